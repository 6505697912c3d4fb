//! MONAI Label's auth handshake, as 3D Slicer's module and the Python client use it:
//! `GET /auth/` (is auth on, and with which client id and realm), `POST /auth/token`
//! (a user name and its static API token as the password give that token back as the
//! access token; other passwords go to the realm's token endpoint when one is configured,
//! as MONAI Label's Keycloak login), `GET /auth/token/valid` (who the bearer is). All answer 404 with auth
//! off, as MONAI Label leaves them unmounted.

use super::State;
use crate::auth::{AuthConfig, Identity};
use crate::{Error, Result};
use axum::{
    extract::{rejection::FormRejection, Form},
    Extension, Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn enabled(state: &State) -> Result<Arc<AuthConfig>> {
    state
        .access
        .auth
        .clone()
        .ok_or_else(|| Error::NotFound("authentication is not enabled on this server".into()))
}

/// `GET /auth/`.
#[utoipa::path(get, path = "/auth/", tag = "auth", responses((status = 200, description = "Whether authentication is on, with the client id and realm")))]
pub(super) async fn status(state: State) -> Result<Json<Value>> {
    let auth = enabled(&state)?;
    Ok(Json(
        json!({"enabled": true, "client_id": auth.client_id, "realm": auth.realm}),
    ))
}

/// `POST /auth/token` form (OAuth2's password grant, as MONAI Label takes it).
#[derive(Debug, Deserialize)]
pub(super) struct Login {
    username: String,
    password: String,
}

/// `POST /auth/token`.
#[utoipa::path(post, path = "/auth/token", tag = "auth", responses((status = 200, description = "An access token for a user name and its API token, or the realm's token answer")))]
pub(super) async fn token(
    state: State,
    form: std::result::Result<Form<Login>, FormRejection>,
) -> Result<Json<Value>> {
    let auth = enabled(&state)?;
    let refused = || Error::Unauthorized("Could not validate credentials".into());
    let Form(login) = form.map_err(|_| refused())?;
    if auth.login(&login.username, &login.password).is_some() {
        return Ok(Json(
            json!({"access_token": login.password, "token_type": "bearer"}),
        ));
    }
    let realm = auth.token_endpoint.as_ref().ok_or_else(refused)?;
    let token = realm
        .password_grant(&auth.client_id, &login.username, &login.password)
        .await?;
    Ok(Json(Value::Object(token)))
}

/// `GET /auth/token/valid`: `{"username", "email", "name", "roles"}` of the bearer.
#[utoipa::path(get, path = "/auth/token/valid", tag = "auth", responses((status = 200, description = "Who the bearer token belongs to")))]
pub(super) async fn valid(state: State, who: Option<Extension<Identity>>) -> Result<Json<Value>> {
    enabled(&state)?;
    let Extension(who) =
        who.ok_or_else(|| Error::Unauthorized("Could not validate credentials".into()))?;
    Ok(Json(serde_json::to_value(who).unwrap_or(Value::Null)))
}
