//! Reading the rest of a request body its handler left unread, before the answer goes out.
//! A client still uploading when it gets an early answer (400 for a bad id, 404 for an
//! unknown image) would otherwise have its connection closed mid-send and report a broken
//! pipe instead of the answer.
//!
//! Bounded: at most [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`], and nothing at all for a
//! 401 or, with auth on, a request without credentials (an unauthenticated client gets no
//! reading of its body, also on an unknown route), for a body that says it has more than
//! the limit left, or for a client waiting on `Expect: 100-continue` whose body nobody
//! asked for (it sends nothing until told to). Then the answer closes the connection
//! instead.

use axum::{
    body::{Body, BodyDataStream},
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use futures_util::{stream, StreamExt};
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::Poll,
    time::Duration,
};

/// The most bytes read and dropped after an early answer.
const DRAIN_LIMIT: u64 = 64 << 20;
/// The longest an early answer waits for the rest of its body.
const DRAIN_TIME: Duration = Duration::from_secs(60);

/// The body the handler reads, and what it did with it.
struct Shared {
    body: Mutex<Option<BodyDataStream>>,
    /// Whether the handler asked for the body at all.
    polled: AtomicBool,
    /// Bytes the handler read.
    read: AtomicU64,
}

/// A request's `Content-Length`, when it has one.
fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The middleware (its state: whether auth is on): the handler reads the body through a
/// shared handle; whatever it left is read and dropped here, within the bounds above,
/// before its answer is returned.
pub(super) async fn drain_unread(
    State(auth_on): State<bool>,
    req: Request,
    next: Next,
) -> Response {
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let declared = content_length(&req);
    if !chunked && declared.unwrap_or(0) == 0 {
        return next.run(req).await;
    }
    let anonymous = auth_on && !req.headers().contains_key(header::AUTHORIZATION);
    let expects_continue = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Shared {
        body: Mutex::new(Some(body.into_data_stream())),
        polled: AtomicBool::new(false),
        read: AtomicU64::new(0),
    });
    let handle = shared.clone();
    let read = stream::poll_fn(move |cx| {
        handle.polled.store(true, Ordering::Relaxed);
        let mut body = handle.body.lock().unwrap_or_else(|e| e.into_inner());
        match body.as_mut() {
            Some(s) => {
                let next = s.poll_next_unpin(cx);
                if let Poll::Ready(Some(Ok(chunk))) = &next {
                    handle.read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                next
            }
            // Only after the answer: whoever still reads must not take this as the end.
            None => Poll::Ready(Some(Err(axum::Error::new("the request was answered")))),
        }
    });
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(read)))
        .await;
    let rest = shared.body.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(mut rest) = rest else {
        return response;
    };
    let read = shared.read.load(Ordering::Relaxed);
    let skip = (expects_continue && !shared.polled.load(Ordering::Relaxed))
        || anonymous
        || response.status() == StatusCode::UNAUTHORIZED
        || declared.is_some_and(|n| n.saturating_sub(read) > DRAIN_LIMIT);
    let drained = !skip
        && tokio::time::timeout(DRAIN_TIME, async {
            let mut dropped = 0u64;
            while let Some(Ok(chunk)) = rest.next().await {
                dropped += chunk.len() as u64;
                if dropped > DRAIN_LIMIT {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false);
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
