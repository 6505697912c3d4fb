//! A DICOMweb client: QIDO-RS to find series, WADO-RS to fetch a series' instances, STOW-RS
//! to store instances (PS3.18). Blocking (reqwest): call it from blocking threads.

use crate::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One series a QIDO-RS search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRef {
    /// `StudyInstanceUID`.
    pub study_uid: String,
    /// `SeriesInstanceUID`.
    pub series_uid: String,
    /// `Modality`, when the server says.
    pub modality: String,
    /// `SeriesDescription`, when the server says.
    pub description: String,
}

/// A DICOMweb server: its base URL (`http://pacs:8042/dicom-web`) and credentials.
pub struct DicomWeb {
    base: String,
    client: reqwest::blocking::Client,
    basic: Option<(String, String)>,
    /// Series asked for per QIDO-RS page.
    page: usize,
}

fn upstream(what: &str, e: impl std::fmt::Display) -> Error {
    Error::BadGateway(format!("DICOMweb {what}: {e}"))
}

/// A DICOM JSON attribute's first value as text (`"0020000E": {"vr": "UI", "Value": [..]}`).
fn first_text(item: &Value, tag: &str) -> String {
    match item
        .get(tag)
        .and_then(|a| a.get("Value"))
        .and_then(|v| v.get(0))
    {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .get("Alphabetic")
            .and_then(Value::as_str)
            .map_or_else(|| v.to_string(), str::to_owned),
        None => String::new(),
    }
}

impl DicomWeb {
    /// A client for `base`, with HTTP basic credentials when given; requests time out after
    /// `timeout`.
    pub fn new(
        base: &str,
        basic: Option<(String, String)>,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::BadRequest(format!(
                "{base}: a DICOMweb URL is http(s)://..."
            )));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| upstream("client", e))?;
        Ok(DicomWeb {
            base,
            client,
            basic,
            page: 500,
        })
    }

    /// Asks for `n` series per QIDO-RS page (500 unless set; at least 1).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page = n.max(1);
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Its HTTP basic credentials.
    pub fn basic(&self) -> Option<&(String, String)> {
        self.basic.as_ref()
    }

    fn get(&self, url: &str, accept: &str) -> Result<reqwest::blocking::Response> {
        let mut req = self.client.get(url).header(reqwest::header::ACCEPT, accept);
        if let Some((user, pass)) = &self.basic {
            req = req.basic_auth(user, Some(pass));
        }
        let r = req.send().map_err(|e| upstream(url, e))?;
        if !r.status().is_success() {
            return Err(upstream(url, format!("answered {}", r.status())));
        }
        Ok(r)
    }

    /// QIDO-RS `GET {base}/series` with `filter` (attribute keyword or tag = value, e.g.
    /// `Modality=MR`), every page of it: pages are asked for by `limit`/`offset` until one
    /// comes back empty or with nothing new (a server may cap a page below the limit, or
    /// ignore the offset).
    pub fn search_series(&self, filter: &[(String, String)]) -> Result<Vec<SeriesRef>> {
        let mut found: Vec<SeriesRef> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut url = reqwest::Url::parse(&format!("{}/series", self.base))
                .map_err(|e| Error::BadRequest(format!("{}: {e}", self.base)))?;
            url.query_pairs_mut()
                .extend_pairs(filter)
                .append_pair("includefield", "0008103E")
                .append_pair("limit", &self.page.to_string())
                .append_pair("offset", &found.len().to_string());
            let r = self.get(url.as_str(), "application/dicom+json")?;
            let page: Vec<Value> = if r.status() == reqwest::StatusCode::NO_CONTENT {
                Vec::new()
            } else {
                r.json().map_err(|e| upstream("QIDO-RS answer", e))?
            };
            let before = found.len();
            found.extend(
                page.iter()
                    .map(|item| SeriesRef {
                        study_uid: first_text(item, "0020000D"),
                        series_uid: first_text(item, "0020000E"),
                        modality: first_text(item, "00080060"),
                        description: first_text(item, "0008103E"),
                    })
                    .filter(|s| seen.insert(s.series_uid.clone())),
            );
            if found.len() == before {
                break;
            }
        }
        found.retain(|s| !s.series_uid.is_empty() && !s.study_uid.is_empty());
        Ok(found)
    }

    /// WADO-RS: the DICOM JSON metadata of a series' instances.
    pub fn series_metadata(&self, study: &str, series: &str) -> Result<Vec<Value>> {
        let url = format!("{}/studies/{study}/series/{series}/metadata", self.base);
        self.get(&url, "application/dicom+json")?
            .json()
            .map_err(|e| upstream("WADO-RS metadata", e))
    }

    /// WADO-RS: every instance of a series, written into `into` as `NNNN.dcm`.
    pub fn retrieve_series(&self, study: &str, series: &str, into: &Path) -> Result<Vec<PathBuf>> {
        let url = format!("{}/studies/{study}/series/{series}", self.base);
        let r = self.get(&url, "multipart/related; type=\"application/dicom\"")?;
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let boundary = boundary(&content_type)
            .ok_or_else(|| upstream(&url, format!("not multipart: {content_type}")))?;
        let body = r.bytes().map_err(|e| upstream(&url, e))?;
        std::fs::create_dir_all(into)
            .map_err(|e| Error::Internal(format!("{}: {e}", into.display())))?;
        let mut files = Vec::new();
        for (i, part) in parts(&body, &boundary).into_iter().enumerate() {
            let path = into.join(format!("{i:04}.dcm"));
            std::fs::write(&path, part)
                .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
            files.push(path);
        }
        if files.is_empty() {
            return Err(upstream(&url, "the series has no instances"));
        }
        Ok(files)
    }

    /// STOW-RS `POST {base}/studies`: stores DICOM Part 10 files; answers the server's
    /// JSON (the stored and failed SOP instances).
    pub fn store(&self, files: &[Vec<u8>]) -> Result<Value> {
        let boundary = format!("labelhost-{:016x}", crate::random::bits());
        let mut body = Vec::new();
        for f in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(f);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let url = format!("{}/studies", self.base);
        let mut req = self
            .client
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header(reqwest::header::ACCEPT, "application/dicom+json")
            .body(body);
        if let Some((user, pass)) = &self.basic {
            req = req.basic_auth(user, Some(pass));
        }
        let r = req.send().map_err(|e| upstream(&url, e))?;
        let status = r.status();
        let answer: Value = r.json().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(upstream(&url, format!("answered {status}: {answer}")));
        }
        Ok(answer)
    }
}

/// The `boundary` parameter of a multipart content type (quotes removed).
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The bodies of a multipart message's parts (their headers dropped).
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    let mut out = Vec::new();
    for pair in starts.windows(2) {
        let (from, to) = (pair[0] + delimiter.len(), pair[1]);
        let part = &body[from..to];
        let Some(h) = memchr::memmem::find(part, b"\r\n\r\n") else {
            continue;
        };
        let content = &part[h + 4..];
        // The CRLF before the next delimiter belongs to it.
        out.push(content.strip_suffix(b"\r\n").unwrap_or(content));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{boundary, first_text, parts};
    use serde_json::json;

    #[test]
    fn multipart_related_bodies_split_on_their_boundary() {
        let ct = "multipart/related; type=\"application/dicom\"; boundary=\"b-1\"";
        assert_eq!(boundary(ct).as_deref(), Some("b-1"));
        assert_eq!(boundary("application/json"), None);
        let body = b"--b-1\r\nContent-Type: application/dicom\r\n\r\nAB\r\nC\r\n--b-1\r\n\r\nD\r\n--b-1--\r\n";
        assert_eq!(parts(body, "b-1"), [&b"AB\r\nC"[..], &b"D"[..]]);
        assert!(parts(b"no parts", "b-1").is_empty());
    }

    #[test]
    fn dicom_json_values_are_read_as_text() {
        let item = json!({"0020000E": {"vr": "UI", "Value": ["1.2.3"]},
                          "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^J"}]},
                          "00080060": {"vr": "CS"}});
        assert_eq!(first_text(&item, "0020000E"), "1.2.3");
        assert_eq!(first_text(&item, "00100010"), "Doe^J");
        assert_eq!(first_text(&item, "00080060"), "");
        assert_eq!(first_text(&item, "missing"), "");
    }
}
