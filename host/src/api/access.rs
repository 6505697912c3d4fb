//! What reaches the server from a browser and what answers reveal about it: the CORS
//! allow-list (no cross-origin access unless origins are configured) and whether clients
//! are told server file paths (only when the operator shares the studies folder with them).

use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// The server's exposure settings.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Origins (`scheme://host[:port]`, or `*` for any) web pages may call the API from.
    pub cors_origins: Vec<HeaderValue>,
    /// Answer `path` fields with the server's absolute paths (MONAI Label's behaviour, for
    /// a 3D Slicer on the same machine or a shared mount), instead of the API route that
    /// serves the file.
    pub share_paths: bool,
}

impl Access {
    /// Checks `--cors-origin` values: `*`, or an origin with a scheme and a host and
    /// nothing after it.
    pub fn parse_origins(values: &[String]) -> Result<Vec<HeaderValue>, String> {
        values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| {
                let ok = v == "*"
                    || v.split_once("://").is_some_and(|(scheme, rest)| {
                        matches!(scheme, "http" | "https")
                            && !rest.is_empty()
                            && !rest.contains(['/', '?', '#', ' '])
                    });
                match (ok, HeaderValue::from_str(v)) {
                    (true, Ok(h)) => Ok(h),
                    _ => Err(format!(
                        "--cors-origin {v:?}: expected an origin like https://viewer.example:8443 \
                         (scheme and host, no path) or *"
                    )),
                }
            })
            .collect()
    }

    /// The CORS layer, `None` (no cross-origin access) without configured origins.
    pub(super) fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origins = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(self.cors_origins.clone())
        };
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
        ];
        Some(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods(methods)
                .allow_headers(AllowHeaders::mirror_request()),
        )
    }

    /// The `path` a client is told for a file the API serves at `route`: the absolute
    /// server path when paths are shared, else the route.
    pub(crate) fn path(&self, absolute: &std::path::Path, route: String) -> String {
        if self.share_paths {
            absolute.to_string_lossy().into_owned()
        } else {
            route
        }
    }
}

/// `text` percent-encoded for a query value (RFC 3986 unreserved characters kept).
pub(crate) fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The route that serves image `id`.
pub(crate) fn image_route(id: &str) -> String {
    format!("/datastore/image?image={}", query_value(id))
}

/// The route that serves `id`'s label of `tag`.
pub(crate) fn label_route(id: &str, tag: &str) -> String {
    format!(
        "/datastore/label?label={}&tag={}",
        query_value(id),
        query_value(tag)
    )
}
