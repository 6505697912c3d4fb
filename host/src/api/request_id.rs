//! Request ids: each request gets one (the client's `x-request-id` when it is a short
//! token, else a new random one), answered back in `x-request-id`, and named by the
//! request's tracing span, which follows the request into spawned and blocking work and
//! so into the plugin log lines (`Host::log`) its calls make.

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The header that carries the id both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id, in its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The client's id when it is 1-64 of `[A-Za-z0-9._-]` (nothing a log line could be
/// forged with), else a new one.
fn chosen(req: &Request) -> String {
    let given = req.headers().get(&HEADER).and_then(|v| v.to_str().ok());
    match given {
        Some(id)
            if (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            id.to_owned()
        }
        _ => format!("{:016x}", crate::random::bits()),
    }
}

/// The outermost middleware: picks the id before the span is made, answers it back.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = chosen(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}
