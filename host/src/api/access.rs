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
        self.check_origin(headers)?;
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

impl Access {
    /// Refuses what a web page the annotator happens to open could send: a request from
    /// another origin not in the CORS allow-list (browsers name it in `Origin`; native
    /// clients send none), and, on a loopback-only server without auth, a `Host` that is
    /// not a loopback name (a DNS-rebinding page reaching 127.0.0.1 under its own name).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Error> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        // No Host at all is a non-browser client (browsers always send one).
        let rebinding = !host.is_empty() && !is_loopback_host(host);
        if self.auth.is_none() && self.loopback_only && rebinding {
            return Err(Error::Forbidden(format!(
                "Host {host:?} refused: this server listens on loopback only and answers \
                 loopback names (localhost, 127.0.0.1, [::1])"
            )));
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let same_origin = origin.to_str().is_ok_and(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
        let listed = self.cors_origins.iter().any(|o| o == "*" || o == origin);
        if same_origin || listed {
            return Ok(());
        }
        Err(Error::Forbidden(format!(
            "a request from web page origin {origin:?} refused: list the origin with --cors-origin"
        )))
    }
}

/// Whether a `Host` header names this machine's loopback (`localhost`, `127.x.x.x`,
/// `[::1]`, with any port).
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn browsers_from_elsewhere_and_rebound_names_are_refused() {
        let local = Access {
            loopback_only: true,
            ..Default::default()
        };
        for ok in [
            "127.0.0.1:8000",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8000",
            "127.1.2.3",
        ] {
            assert!(
                local.check_origin(&headers(&[("host", ok)])).is_ok(),
                "{ok}"
            );
        }
        assert!(
            local.check_origin(&HeaderMap::new()).is_ok(),
            "no Host: not a browser"
        );
        assert!(local
            .check_origin(&headers(&[("host", "evil.example:8000")]))
            .is_err());
        let same = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        assert!(local.check_origin(&same).is_ok(), "the server's own pages");
        let other = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "https://evil.example"),
        ]);
        assert!(local.check_origin(&other).is_err());
        let listed = Access {
            cors_origins: vec![HeaderValue::from_static("https://viewer.example")],
            ..local.clone()
        };
        let viewer = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "https://viewer.example"),
        ]);
        assert!(listed.check_origin(&viewer).is_ok());
        // On a wider address (auth off) names are not checked, origins still are.
        let wide = Access::default();
        assert!(wide
            .check_origin(&headers(&[("host", "annotate.lan:8000")]))
            .is_ok());
        assert!(wide.check_origin(&other).is_err());
    }
}
