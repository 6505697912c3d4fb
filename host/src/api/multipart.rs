//! Opening a request's multipart form through `labelhost_wire::multipart::guard`, so that no
//! part's headers can grow past their bound in memory (see that module).

use crate::{Error, Result};
use axum::{
    body::Body,
    extract::{FromRequest, Multipart, Request},
    http::header,
};

/// The request's multipart form, its body guarded.
pub(crate) async fn open(req: Request) -> Result<Multipart> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    let req = match boundary {
        Some(boundary) => req.map(|body| {
            Body::from_stream(labelhost_wire::multipart::guard(
                body.into_data_stream(),
                &boundary,
            ))
        }),
        None => req,
    };
    Multipart::from_request(req, &())
        .await
        .map_err(|e| Error::BadRequest(e.body_text()))
}
