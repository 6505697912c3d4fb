//! Request-body helpers shared by the routes that take files: multipart uploads streamed
//! to temp files (deleted when dropped), JSON form fields, and file downloads with
//! Starlette's headers.

use crate::datastore::ids::ext_of;
use crate::{Error, Result};
use axum::{
    extract::{multipart::MultipartError, Request},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Upload bytes are gathered into blocks of this size before each write.
/// Largest accepted request body on the routes that take files (4 GiB).
pub(super) const UPLOAD_LIMIT: u64 = 4 << 30;

/// The upload body limit as an axum layer.
pub(super) fn upload_limit() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(usize::try_from(UPLOAD_LIMIT).unwrap_or(usize::MAX))
}

/// Largest accepted JSON form field (`params`, `info`).
const FIELD_LIMIT: usize = 1 << 20;

const WRITE_BLOCK: usize = 1 << 20;

/// Reads a small form field (at most 1 MiB), refusing bigger ones before buffering them.
pub(super) async fn small_field(
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > FIELD_LIMIT {
            return Err(Error::BadRequest(format!(
                "form field '{}' is over 1 MiB",
                field.name().unwrap_or("")
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A JSON object sent as the text of form field `name`; blank or `null` is `{}`.
pub(super) fn json_field(name: &str, text: &[u8]) -> Result<Map<String, Value>> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(Error::BadRequest(format!(
            "form field '{name}' must be a JSON object"
        ))),
        Err(e) => Err(Error::BadRequest(format!(
            "form field '{name}' is not valid JSON: {e}"
        ))),
    }
}

/// A multipart failure as a 400, with the innermost cause (the parser only says "failed to
/// read stream" when the body's guard stopped it: `multipart.rs`).
pub(super) fn multipart_error(e: MultipartError) -> Error {
    let mut text = e.body_text();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    let mut deepest = None;
    while let Some(c) = cause {
        deepest = Some(c.to_string());
        cause = c.source();
    }
    if let Some(d) = deepest.filter(|d| !text.contains(d.as_str())) {
        text = format!("{text}: {d}");
    }
    Error::BadRequest(format!("bad multipart body: {text}"))
}

pub(super) fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// An uploaded file in a temp file, deleted when this is dropped.
pub(super) struct Upload {
    path: PathBuf,
    /// The file name the client gave, if any.
    file_name: Option<String>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads an upload form: the file part `file_part` (required: 422 without it) streamed to
/// a temp file, and `params` (a JSON object string, `{}` when absent). Other parts are
/// ignored, as FastAPI does.
pub(super) async fn read_upload(
    req: Request,
    file_part: &str,
) -> Result<(Upload, Map<String, Value>)> {
    let missing = || Error::Unprocessable(format!("the multipart '{file_part}' part is required"));
    if !content_type(&req).starts_with("multipart/form-data") {
        return Err(missing());
    }
    let mut form = super::multipart::open(req).await?;
    let (mut upload, mut params) = (None, Map::new());
    while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some(name) if name == file_part => {
                if upload.is_some() {
                    return Err(Error::BadRequest(format!(
                        "more than one '{file_part}' part"
                    )));
                }
                upload = Some(receive(&mut field).await?);
            }
            Some("params") => {
                params = json_field("params", &small_field(&mut field).await?)?;
            }
            _ => {}
        }
    }
    Ok((upload.ok_or_else(missing)?, params))
}

/// Streams one file part to a fresh scratch file (`crate::runtime`) named with the client's extension (MONAI
/// Label's default `.nii.gz` when the part has no file name).
pub(super) async fn receive(field: &mut axum::extract::multipart::Field<'_>) -> Result<Upload> {
    let file_name = field.file_name().map(str::to_owned);
    let ext = file_name
        .as_deref()
        .map(|n| ext_of(base_name(n)))
        .unwrap_or_else(|| ".nii.gz".to_owned());
    if ext.len() > 64 || ext.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "unsupported file name {file_name:?}"
        )));
    }
    let (file, path) =
        super::blocking(move || crate::runtime::scratch_file("upload", &ext)).await?;
    let upload = Upload { path, file_name };
    let mut out = (file, Vec::with_capacity(WRITE_BLOCK));
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        out.1.extend_from_slice(&chunk);
        if out.1.len() >= WRITE_BLOCK {
            out = write_block(out, &upload).await?;
        }
    }
    write_block(out, &upload).await?;
    Ok(upload)
}

/// Appends the gathered bytes to the temp file on a blocking thread; hands both back.
async fn write_block(
    (mut file, mut block): (std::fs::File, Vec<u8>),
    upload: &Upload,
) -> Result<(std::fs::File, Vec<u8>)> {
    let path = upload.path.clone();
    super::blocking(move || {
        file.write_all(&block)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
        block.clear();
        Ok::<_, Error>((file, block))
    })
    .await
}

/// A client file name without its folders (either separator).
pub(super) fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// A stored file as a download: its bytes, a content type and
/// `content-disposition: attachment` with its base name. A missing file (or a folder) is
/// 404 with `missing` as the detail, MONAI Label's words. `flags` are added to the open
/// (`O_NOFOLLOW` for the datastore's files: a link is refused, 400; it covers the last
/// path component, a linked folder is caught by the datastore's own check); what is sent
/// is what was opened, whatever the path names afterwards. The open never blocks: a FIFO
/// planted under a file's name is not a file (404), not a wait for a writer.
pub(super) async fn send_file(
    path: Result<PathBuf>,
    missing: &str,
    flags: i32,
) -> Result<Response> {
    let not_found = || Error::NotFound(missing.to_owned());
    let path = path.map_err(|e| match e {
        Error::NotFound(_) => not_found(),
        other => other,
    })?;
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NONBLOCK)
        .open(&path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory => not_found(),
            _ if e.raw_os_error() == Some(libc::ELOOP) => Error::BadRequest(
                "the file is a symbolic link in the studies folder: the server reads links \
                 only when started with --follow-symlinks"
                    .into(),
            ),
            _ => Error::Internal(format!("cannot read {}: {e}", path.display())),
        })?;
    let meta = file.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = if name.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    };
    Ok(stream_file(file, meta.len(), kind, &name))
}

/// A response streaming an open file (never held in memory whole); the file may already
/// be unlinked (temporary archives are removed as soon as they are opened).
pub(super) fn stream_file(
    file: tokio::fs::File,
    len: u64,
    kind: &'static str,
    name: &str,
) -> Response {
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// Starlette's `FileResponse` header: `filename="..."` for plain names, RFC 5987
/// `filename*=utf-8''...` otherwise.
pub(super) fn content_disposition(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            quoted.push(char::from(b));
        } else {
            quoted.push_str(&format!("%{b:02X}"));
        }
    }
    if quoted == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("attachment; filename*=utf-8''{quoted}")
    }
}

impl Upload {
    /// Where the upload was written.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
    /// The client's file name, if it sent one.
    pub(super) fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }
}
