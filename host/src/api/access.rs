//! Who may call what, from where, and what answers reveal: the auth guard (a bearer token
//! and the role each route needs, `crate::auth`), app management kept to loopback when auth
//! is off, the CORS allow-list (no cross-origin access unless origins are configured) and
//! whether clients are told server file paths (only when the operator shares them).

use crate::auth::{routes::Need, AuthConfig, Identity};
use crate::Error;
use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;
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
    /// Authentication, when configured (`--auth-config`).
    pub auth: Option<Arc<AuthConfig>>,
    /// Whether the server listens on a loopback address only.
    pub loopback_only: bool,
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

impl Access {
    /// Lets a request through when its caller may use its route; the identity, when auth
    /// is on, goes into the request's extensions.
    fn admit(&self, need: Need, headers: &HeaderMap) -> Result<Option<Identity>, Error> {
        let Some(auth) = &self.auth else {
            if need == Need::ManageApps && !self.loopback_only {
                return Err(Error::Forbidden(
                    "app management loads native code: it needs authentication \
                     (--auth-config) when the server listens beyond loopback"
                        .into(),
                ));
            }
            return Ok(None);
        };
        if need == Need::Public {
            return Ok(None);
        }
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let unauthorized = || Error::Unauthorized("Could not validate credentials".into());
        let who = match token {
            Some(token) => auth.authenticate(token).map_err(|e| {
                tracing::info!("credentials refused: {e}");
                unauthorized()
            })?,
            None => return Err(unauthorized()),
        };
        let role = match need {
            Need::Role(role) => Some(role),
            Need::ManageApps => Some(crate::auth::Role::Admin),
            Need::Public | Need::Bearer => None,
        };
        match role {
            Some(role) if !who.has(role) => Err(Error::Forbidden(format!(
                "Role \"{role}\" is required to perform this action"
            ))),
            _ => Ok(Some(who)),
        }
    }
}

/// The middleware on every route: what the route needs (`crate::auth::routes`) checked
/// against the request's credentials before the handler runs.
pub(super) async fn guard(
    State(state): State<Arc<super::AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    let need = crate::auth::routes::required(req.method(), route);
    match state.access.admit(need, req.headers()) {
        Ok(who) => {
            if let Some(who) = who {
                req.extensions_mut().insert(who);
            }
            next.run(req).await
        }
        Err(e) => e.into_response(),
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
