//! Reading the rest of a request body its handler left unread, before the answer goes out.
//! A client still uploading when it gets an early answer (400 for a bad id, 404 for an
//! unknown image) would otherwise have its connection closed mid-send and report a broken
//! pipe instead of the answer. At most [`UPLOAD_LIMIT`] bytes are read (what an upload may
//! send anyway), each piece within the connection's idle timeout (serve.rs); they are
//! dropped.

use super::upload::UPLOAD_LIMIT;
use axum::{
    body::{Body, BodyDataStream},
    extract::Request,
    http::header,
    middleware::Next,
    response::Response,
};
use futures_util::{stream, StreamExt};
use std::{
    sync::{Arc, Mutex},
    task::Poll,
};

/// Whether a request announces a body.
fn has_body(req: &Request) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// The middleware: the handler reads the body through a shared handle; whatever it left
/// is read and dropped here before its answer is returned.
pub(super) async fn drain_unread(req: Request, next: Next) -> Response {
    if !has_body(&req) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let shared: Arc<Mutex<Option<BodyDataStream>>> =
        Arc::new(Mutex::new(Some(body.into_data_stream())));
    let handle = shared.clone();
    let read = stream::poll_fn(move |cx| {
        let mut body = handle.lock().unwrap_or_else(|e| e.into_inner());
        match body.as_mut() {
            Some(s) => s.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    });
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(read)))
        .await;
    let rest = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(mut rest) = rest {
        let mut dropped = 0u64;
        while let Some(Ok(chunk)) = rest.next().await {
            dropped += chunk.len() as u64;
            if dropped > UPLOAD_LIMIT {
                break;
            }
        }
    }
    response
}
