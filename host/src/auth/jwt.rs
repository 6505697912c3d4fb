//! JWT verification: RS256 or ES256 only (never `none`, never a shared secret), signature
//! against the configured public keys or JWKS (by `kid` when the token names one), `exp`
//! required, `nbf` honoured, `iss`/`aud` when configured; then the identity from MONAI Label's claims.

use super::config::{Claims, JwtEntry};
use super::{Identity, Rejected, Role};
use jsonwebtoken::{
    decode, decode_header,
    jwk::{AlgorithmParameters, JwkSet},
    Algorithm, DecodingKey, Validation,
};
use serde_json::Value;
use std::path::Path;

/// One verification key.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, {:?})", self.alg, self.kid)
    }
}

/// Checks JWTs and reads identities from them.
#[derive(Debug)]
pub(crate) struct JwtVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    claims: Claims,
    /// For each role, the name tokens carry for it.
    role_names: Vec<(Role, String)>,
}

impl JwtVerifier {
    /// Loads the keys named in the `jwt` section (paths relative to `base`).
    pub(super) fn new(entry: JwtEntry, base: &Path) -> Result<Self, String> {
        let mut keys = Vec::new();
        for file in &entry.public_keys {
            let pem = std::fs::read(base.join(file)).map_err(|e| format!("jwt key {file}: {e}"))?;
            let key = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, k)
            } else {
                return Err(format!(
                    "jwt key {file}: not a PEM RSA or EC P-256 public key"
                ));
            };
            keys.push(Key {
                kid: None,
                alg: key.0,
                key: key.1,
            });
        }
        if let Some(file) = &entry.jwks {
            let text = std::fs::read_to_string(base.join(file))
                .map_err(|e| format!("jwt jwks {file}: {e}"))?;
            let set: JwkSet =
                serde_json::from_str(&text).map_err(|e| format!("jwt jwks {file}: {e}"))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                };
                let key =
                    DecodingKey::from_jwk(jwk).map_err(|e| format!("jwt jwks {file}: {e}"))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
        }
        if keys.is_empty() {
            return Err("the jwt section names no usable key (public_keys or jwks)".into());
        }
        let role_names = Role::ALL
            .into_iter()
            .map(|r| {
                let name = entry
                    .role_names
                    .get(r.name())
                    .cloned()
                    .unwrap_or_else(|| format!("monailabel-{r}"));
                (r, name)
            })
            .collect();
        Ok(JwtVerifier {
            keys,
            issuer: entry.issuer,
            audience: entry.audience,
            claims: entry.claims,
            role_names,
        })
    }

    /// The identity a valid token carries.
    pub(super) fn verify(&self, token: &str) -> Result<Identity, Rejected> {
        let reject = |why: String| Rejected(why);
        let header = decode_header(token).map_err(|e| reject(format!("bad JWT header: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(reject(format!(
                "JWT algorithm {:?} refused (RS256, ES256)",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let candidates = self.keys.iter().filter(|k| {
            k.alg == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        });
        let mut last = reject("no key for the token's algorithm and kid".into());
        for k in candidates {
            match decode::<Value>(token, &k.key, &validation) {
                Ok(data) => return Ok(self.identity(&data.claims)),
                Err(e) => last = reject(format!("JWT refused: {e}")),
            }
        }
        Err(last)
    }

    fn identity(&self, claims: &Value) -> Identity {
        let text = |path: &str| {
            claim(claims, path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let held: Vec<&str> = claim(claims, &self.claims.roles)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let roles = self
            .role_names
            .iter()
            .filter(|(_, name)| held.contains(&name.as_str()))
            .map(|(r, _)| *r)
            .collect();
        Identity {
            username: text(&self.claims.username),
            email: text(&self.claims.email),
            name: text(&self.claims.name),
            roles,
        }
    }
}

/// A claim at a `#`-separated path.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('#').try_fold(claims, |v, key| v.get(key))
}
