//! Static tokens, the role order and the route table; JWTs are tested end to end with real
//! signed tokens in `tests/integration/auth.rs`.

use super::routes::{required, Need};
use super::*;
use axum::http::Method;

fn config(dir: &std::path::Path, text: &str) -> Result<AuthConfig, String> {
    let path = dir.join("auth.json");
    std::fs::write(&path, text).expect("write");
    AuthConfig::load(&path)
}

#[test]
fn static_tokens_are_matched_by_digest_and_carry_their_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = new_token();
    assert_eq!(token.len(), 64);
    let text = format!(
        r#"{{"tokens": [{{"username": "ann", "roles": ["annotator"], "sha256": "{}"}}]}}"#,
        digest(&token)
    );
    let auth = config(dir.path(), &text).expect("valid");
    let who = auth.authenticate(&token).expect("known token");
    assert_eq!(
        (who.username.as_str(), who.roles.as_slice()),
        ("ann", &[Role::Annotator][..])
    );
    assert!(who.has(Role::User) && who.has(Role::Annotator));
    assert!(!who.has(Role::Reviewer) && !who.has(Role::Admin));
    assert!(auth.authenticate(&new_token()).is_err());
    assert!(
        auth.authenticate(&digest(&token)).is_err(),
        "the digest is not the token"
    );
    assert_eq!(
        auth.login("ann", &token).map(|i| i.username),
        Some("ann".into())
    );
    assert!(auth.login("bob", &token).is_none(), "another user's token");

    for (bad, words) in [
        (r#"{}"#, "nobody could sign in"),
        (
            r#"{"tokens": [{"username": "a", "roles": ["user"], "sha256": "abc"}]}"#,
            "64 hex",
        ),
        (
            r#"{"tokens": [{"username": "a", "roles": ["boss"], "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}"#,
            "\"boss\"",
        ),
        (r#"{"tokenz": []}"#, "unknown field"),
        (
            r#"{"jwt": {"public_keys": ["missing.pem"]}}"#,
            "missing.pem",
        ),
    ] {
        let e = config(dir.path(), bad).expect_err(bad);
        assert!(e.contains(words), "{e} lacks {words}");
    }
}

#[test]
fn routes_need_monai_labels_roles_and_unknown_ones_need_admin() {
    let need = |m: Method, r: &str| required(&m, Some(r));
    assert_eq!(need(Method::GET, "/health"), Need::Public);
    assert_eq!(need(Method::POST, "/auth/token"), Need::Public);
    assert_eq!(need(Method::GET, "/auth/token/valid"), Need::Bearer);
    assert_eq!(need(Method::GET, "/info/"), Need::Role(Role::User));
    assert_eq!(need(Method::POST, "/infer/{model}"), Need::Role(Role::User));
    assert_eq!(
        need(Method::HEAD, "/datastore/image"),
        Need::Role(Role::User)
    );
    assert_eq!(
        need(Method::PUT, "/datastore/label"),
        Need::Role(Role::Annotator)
    );
    assert_eq!(
        need(Method::PUT, "/datastore/"),
        Need::Role(Role::Annotator)
    );
    assert_eq!(
        need(Method::DELETE, "/datastore/label"),
        Need::Role(Role::Admin)
    );
    assert_eq!(
        need(Method::DELETE, "/datastore/image"),
        Need::Role(Role::Admin)
    );
    assert_eq!(
        need(Method::POST, "/scoring/{method}"),
        Need::Role(Role::Annotator)
    );
    assert_eq!(need(Method::GET, "/train/"), Need::Role(Role::User));
    assert_eq!(
        need(Method::POST, "/train/{model}"),
        Need::Role(Role::Admin)
    );
    assert_eq!(
        need(Method::GET, "/datastore/dataset"),
        Need::Role(Role::Annotator)
    );
    assert_eq!(need(Method::GET, "/logs/"), Need::Role(Role::Admin));
    assert_eq!(need(Method::GET, "/metrics"), Need::Role(Role::Admin));
    assert_eq!(need(Method::GET, "/apps"), Need::Role(Role::User));
    assert_eq!(need(Method::POST, "/apps"), Need::ManageApps);
    assert_eq!(need(Method::DELETE, "/apps/{name}"), Need::ManageApps);
    assert_eq!(need(Method::GET, "/new/route"), Need::Role(Role::Admin));
    assert_eq!(required(&Method::GET, None), Need::Role(Role::Admin));
}
