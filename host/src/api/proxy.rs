//! `/proxy/dicom/...`: MONAI Label's passthrough to the DICOMweb server behind the datastore
//! (OHIF reads studies through it): `qido/`, `wado/` and `stow/` (and no prefix) all name
//! that server here; the method, query, body, `Accept` and `Content-Type` go through, the
//! server's credentials are added, and its status, type and body come back as they came.

use super::State;
use crate::{Error, Result};
use axum::{
    body::Body,
    extract::{Path, Request},
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use futures_util::TryStreamExt;

/// The client every proxied request goes through.
fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// `GET|HEAD|POST /proxy/dicom/{*path}`
pub(super) async fn proxy(
    state: State,
    Path(path): Path<String>,
    req: Request,
) -> Result<Response> {
    let Some((base, basic)) = state.shared.datastore.dicomweb() else {
        return Err(Error::NotFound(
            "no DICOMweb server is behind this datastore (--studies is a folder)".into(),
        ));
    };
    let rest = ["qido/", "wado/", "stow/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .unwrap_or(&path);
    if rest.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::BadRequest(format!(
            "/proxy/dicom/{path}: no dot segments"
        )));
    }
    let mut url = format!("{base}/{rest}");
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let mut out = client().request(method, &url);
    for name in [header::ACCEPT, header::CONTENT_TYPE] {
        if let Some(v) = req.headers().get(&name) {
            out = out.header(name.as_str(), v.as_bytes());
        }
    }
    if let Some((user, pass)) = &basic {
        out = out.basic_auth(user, Some(pass));
    }
    let body = req.into_body().into_data_stream();
    let answer = out
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .map_err(|e| Error::BadGateway(format!("DICOMweb {url}: {e}")))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    if let Some(v) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}
