//! Who is calling: optional authentication with MONAI Label's roles. Static API tokens
//! (kept as SHA-256 digests in the config file) and JWTs (RS256/ES256, checked against
//! configured public keys or a JWKS file, with the claims MONAI Label's Keycloak setup
//! uses) give an [`Identity`]; [`routes::required`] says which [`Role`] each route needs;
//! [`realm`] passes a password login on to a Keycloak realm.

mod config;
mod jwt;
pub mod realm;
pub mod routes;
#[cfg(test)]
mod tests;

pub use config::AuthConfig;

use sha2::{Digest, Sha256};
use std::fmt;

/// MONAI Label's roles, weakest first. A role includes the ones below it (admin ⊃
/// reviewer ⊃ annotator ⊃ user, as MONAI Label's role scopes intend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the datastore, runs inference, asks for samples.
    User,
    /// Saves labels and images, runs scoring.
    Annotator,
    /// Reviews labels.
    Reviewer,
    /// Trains, deletes, manages apps, reads the log.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::User, Role::Annotator, Role::Reviewer, Role::Admin];

    /// The role's name (`user`, `annotator`, `reviewer`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    /// The role a plain name means.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Identity {
    /// The user name (a token's `username`, a JWT's username claim).
    pub username: String,
    /// Email, when the token says.
    pub email: String,
    /// Display name, when the token says.
    pub name: String,
    /// The roles held.
    pub roles: Vec<Role>,
}

impl Identity {
    /// Whether the caller holds `role` or a stronger one.
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|&r| r >= role)
    }
}

/// Why a bearer token was not accepted (the 401's reason, for the log only: the client is
/// told no more than "Could not validate credentials").
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// The lowercase hex SHA-256 of a token, as the config file keeps it.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random API token (256 bits, hex).
pub fn new_token() -> String {
    hex::encode(crate::random::bytes::<32>())
}

impl AuthConfig {
    /// The identity a bearer token proves: a static token (by its digest) or a JWT.
    pub fn authenticate(&self, token: &str) -> Result<Identity, Rejected> {
        let presented = digest(token);
        if let Some(t) = self
            .tokens
            .iter()
            .find(|t| same(t.sha256.as_bytes(), presented.as_bytes()))
        {
            return Ok(Identity {
                username: t.username.clone(),
                email: String::new(),
                name: t.username.clone(),
                roles: t.roles.clone(),
            });
        }
        match &self.jwt {
            Some(jwt) if token.matches('.').count() == 2 => jwt.verify(token),
            _ => Err(Rejected("not a known API token".into())),
        }
    }

    /// `POST /auth/token`'s check: the static token of `username` given as the password.
    pub fn login(&self, username: &str, password: &str) -> Option<Identity> {
        let presented = digest(password);
        let found = self
            .tokens
            .iter()
            .find(|t| same(t.sha256.as_bytes(), presented.as_bytes()) && t.username == username)?;
        Some(Identity {
            username: found.username.clone(),
            email: String::new(),
            name: found.username.clone(),
            roles: found.roles.clone(),
        })
    }
}
