//! The password grant MONAI Label's `POST /auth/token` passes to a Keycloak realm: a user
//! name and password that are not a static API token are posted to the realm's token
//! endpoint (`token_url` in the auth config), and its token answer goes back as it came.

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::time::Duration;

/// How long the realm has to answer (MONAI Label's `MONAI_LABEL_AUTH_TIMEOUT` default).
const REALM_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of a token answer read.
const ANSWER_LIMIT: usize = 1 << 20;
/// The most logins passed to the realm at once; more are answered 503 (guessing a
/// password through this server cannot flood the realm).
const AT_ONCE: usize = 8;

/// A realm's token endpoint and the client to call it with.
#[derive(Debug)]
pub struct Realm {
    url: String,
    client: reqwest::Client,
    at_once: tokio::sync::Semaphore,
}

impl Realm {
    /// A realm at `url` (`http` or `https`); refused with a message naming the field.
    pub fn new(url: &str) -> std::result::Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("token_url {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("token_url {url:?}: not an http or https URL"));
        }
        let client = reqwest::Client::builder()
            .timeout(REALM_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("token_url: no HTTP client: {e}"))?;
        Ok(Realm {
            url: url.to_owned(),
            client,
            at_once: tokio::sync::Semaphore::new(AT_ONCE),
        })
    }

    /// OAuth2's password grant for `username`/`password` as `client_id`: the realm's token
    /// answer (a JSON object with `access_token`). The realm refusing the credentials
    /// (`invalid_grant`) is 401 as for a wrong static token; a realm that cannot be reached,
    /// refuses the client (`invalid_client`, `unauthorized_client`: its set-up) or answers
    /// otherwise is 502, logged; more than [`AT_ONCE`] logins at once, 503.
    pub async fn password_grant(
        &self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<Map<String, Value>> {
        let unreachable = |why: String| {
            tracing::warn!(%why, "the realm's token endpoint failed");
            Error::BadGateway(format!(
                "the sign-in service did not answer properly: {why}"
            ))
        };
        let Ok(_turn) = self.at_once.try_acquire() else {
            return Err(Error::Overloaded(
                "too many logins at once; retry in a moment".into(),
            ));
        };
        let form = [
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", username),
            ("password", password),
        ];
        let mut answer = self
            .client
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable(without_url(&e)))?;
        let status = answer.status();
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| unreachable(without_url(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > ANSWER_LIMIT {
                return Err(unreachable("an answer over 1 MiB".into()));
            }
        }
        let answer: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let error = answer
                .as_ref()
                .and_then(|a| a.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("");
            // Keycloak's answer to a wrong password, an unknown or disabled user.
            if matches!(status.as_u16(), 400 | 401) && error == "invalid_grant" {
                return Err(Error::Unauthorized("Could not validate credentials".into()));
            }
            return Err(unreachable(format!("status {status} {error}")));
        }
        match answer {
            Some(token) if token.get("access_token").is_some_and(Value::is_string) => Ok(token),
            _ => Err(unreachable("no access_token in its answer".into())),
        }
    }
}

/// A client error's text without the URL (the realm's address stays in the config).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    kind.to_owned()
}
