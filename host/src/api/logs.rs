//! `GET /logs/`: the tail of the server log (MONAI Label's log viewer), as HTML or text.

use crate::{logs::LogBuffer, Error, Result};
use axum::{
    extract::{rejection::QueryRejection, Query},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

fn yes() -> bool {
    true
}

/// Query parameters (MONAI Label's).
#[derive(Debug, Deserialize)]
pub(super) struct LogQuery {
    #[serde(default = "default_lines")]
    lines: usize,
    #[serde(default = "yes")]
    html: bool,
    #[serde(default)]
    text: bool,
    #[serde(default)]
    refresh: u32,
}

fn default_lines() -> usize {
    300
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The last `lines` lines, `text/plain` with `text=true`, else an HTML page (refreshing
/// every `refresh` seconds when set).
#[utoipa::path(get, path = "/logs/", tag = "labelhost", params(("lines" = Option<usize>, Query, description = ""), ("text" = Option<bool>, Query, description = ""), ("html" = Option<bool>, Query, description = ""), ("refresh" = Option<u32>, Query, description = "")), responses((status = 200, description = "The last lines of the server log")))]
pub(super) async fn tail(query: Result<Query<LogQuery>, QueryRejection>) -> Result<Response> {
    let Query(q) = query?;
    let lines = LogBuffer::global().tail(q.lines.min(5000));
    let text = lines.join("\n");
    if q.text || !q.html {
        let mut r = text.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(r);
    }
    let refresh = if q.refresh > 0 {
        format!("<meta http-equiv=\"refresh\" content=\"{}\">", q.refresh)
    } else {
        String::new()
    };
    let page = format!("<!doctype html><html><head><title>labelhost log</title>{refresh}</head><body><pre>{}</pre></body></html>", escape(&text));
    Ok(axum::response::Html(page).into_response())
}

/// `GET /logs/gpu`: `nvidia-smi`'s report, when the machine has one.
#[utoipa::path(get, path = "/logs/gpu", tag = "labelhost", responses((status = 200, description = "nvidia-smi's report")))]
pub(super) async fn gpu() -> Result<Response> {
    let out = tokio::process::Command::new("nvidia-smi").output().await;
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .into_owned()
            .into_response()),
        _ => Err(Error::NotFound(
            "nvidia-smi is not available on this server".into(),
        )),
    }
}
