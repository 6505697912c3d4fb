//! The auth config file (`--auth-config`, JSON): static tokens by digest, JWT keys and
//! claims, the names `GET /auth/` answers with, the realm's token endpoint. Checked whole at start; paths in it are
//! relative to the file.

use super::jwt::JwtVerifier;
use super::Role;
use serde::Deserialize;
use std::path::Path;

/// A loaded, checked auth config.
#[derive(Debug)]
pub struct AuthConfig {
    /// Static API tokens.
    pub(super) tokens: Vec<StaticToken>,
    /// JWT verification, when configured.
    pub(super) jwt: Option<JwtVerifier>,
    /// What `GET /auth/` says (MONAI Label's Keycloak client id).
    pub client_id: String,
    /// What `GET /auth/` says (the realm's URI).
    pub realm: String,
    /// Where `POST /auth/token` passes a password login that is not a static token.
    pub token_endpoint: Option<super::realm::Realm>,
}

/// One static token: who it is, its roles, the SHA-256 of the token itself.
#[derive(Debug, Clone)]
pub(super) struct StaticToken {
    pub(super) username: String,
    pub(super) roles: Vec<Role>,
    pub(super) sha256: String,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    jwt: Option<JwtEntry>,
    #[serde(default = "default_client_id")]
    client_id: String,
    #[serde(default)]
    realm: String,
    /// The realm's token endpoint (Keycloak: `<realm>/protocol/openid-connect/token`).
    token_url: Option<String>,
}

fn default_client_id() -> String {
    "monailabel-app".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    username: String,
    roles: Vec<String>,
    sha256: String,
}

/// The `jwt` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JwtEntry {
    /// PEM public keys (RSA for RS256, EC P-256 for ES256).
    #[serde(default)]
    pub(super) public_keys: Vec<String>,
    /// A JWKS file (Keycloak's `.../protocol/openid-connect/certs`, saved).
    pub(super) jwks: Option<String>,
    /// Required `iss`, when set.
    pub(super) issuer: Option<String>,
    /// Required `aud`, when set (MONAI Label checks none).
    pub(super) audience: Option<String>,
    /// Where the claims are: MONAI Label's settings and defaults.
    #[serde(default)]
    pub(super) claims: Claims,
    /// The role names tokens carry for each role (MONAI Label's `monailabel-<role>`).
    #[serde(default)]
    pub(super) role_names: std::collections::BTreeMap<String, String>,
}

/// Claim names; `#` separates nested keys (`realm_access#roles`), as MONAI Label writes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Claims {
    pub(super) username: String,
    pub(super) email: String,
    pub(super) name: String,
    pub(super) roles: String,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            username: "preferred_username".into(),
            email: "email".into(),
            name: "name".into(),
            roles: "realm_access#roles".into(),
        }
    }
}

impl AuthConfig {
    /// Reads and checks `path`; every problem is one message naming the field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let at = |what: String| format!("--auth-config {}: {what}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        let file: File = serde_json::from_str(&text).map_err(|e| at(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut tokens = Vec::new();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let sha256 = t.sha256.to_ascii_lowercase();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at(format!(
                    "tokens[{i}].sha256 must be 64 hex digits (the SHA-256 of the token; \
                     `labelhost token` makes one)"
                )));
            }
            if t.username.is_empty() {
                return Err(at(format!("tokens[{i}].username is empty")));
            }
            let roles = t
                .roles
                .iter()
                .map(|r| {
                    Role::parse(r).ok_or_else(|| {
                        at(format!(
                            "tokens[{i}].roles: {r:?} is not user, annotator, reviewer or admin"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            tokens.push(StaticToken {
                username: t.username,
                roles,
                sha256,
            });
        }
        let jwt = match file.jwt {
            Some(entry) => Some(JwtVerifier::new(entry, base).map_err(at)?),
            None => None,
        };
        let token_endpoint = match &file.token_url {
            Some(url) => Some(super::realm::Realm::new(url).map_err(at)?),
            None => None,
        };
        if token_endpoint.is_some() && jwt.is_none() {
            return Err(at(
                "token_url without a jwt section: the realm's tokens could not be checked".into(),
            ));
        }
        if tokens.is_empty() && jwt.is_none() {
            return Err(at(
                "no tokens and no jwt section: nobody could sign in".into()
            ));
        }
        Ok(AuthConfig {
            tokens,
            jwt,
            client_id: file.client_id,
            realm: file.realm,
            token_endpoint,
        })
    }
}
