//! Authentication and roles with real credentials: API tokens made by `labelhost token`,
//! RS256 JWTs checked against a PEM public key and ES256 JWTs against a JWKS file, as a
//! Keycloak realm signs them; expired, forged and wrongly issued tokens refused; every
//! role against every route; MONAI Label's `/auth/` handshake; app management kept to
//! loopback when auth is off.

use crate::support::{binary, client, pack_first_party, Server, Workspace};
use jsonwebtoken::{encode, jwk::Jwk, Algorithm, EncodingKey, Header};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// `labelhost token --username U --role R`: the token and its config entry.
fn make_token(username: &str, role: &str) -> (String, Value) {
    let out = std::process::Command::new(binary())
        .args(["token", "--username", username, "--role", role])
        .output()
        .expect("labelhost token");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let line = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .expect(prefix)
            .to_owned()
    };
    let entry = serde_json::from_str(&line("auth config entry: ")).expect("entry");
    (line("token: "), entry)
}

/// Signing keys: an RSA key (its public PEM in the config) and an EC P-256 key (in a JWKS).
struct Keys {
    rsa: EncodingKey,
    ec: EncodingKey,
    other_rsa: EncodingKey,
    rsa_public_pem: String,
}

fn keys(dir: &Path) -> Keys {
    use p256::pkcs8::LineEnding;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let mut rng = rand::thread_rng();
    let rsa_key =
        |rng: &mut rand::rngs::ThreadRng| rsa::RsaPrivateKey::new(rng, 2048).expect("rsa");
    let (rsa, other) = (rsa_key(&mut rng), rsa_key(&mut rng));
    let pem = |k: &rsa::RsaPrivateKey| k.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
    let rsa_public_pem = rsa
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    std::fs::write(dir.join("realm.pem"), &rsa_public_pem).expect("write");
    let ec = p256::SecretKey::random(&mut rng);
    let ec = EncodingKey::from_ec_pem(ec.to_pkcs8_pem(LineEnding::LF).expect("pem").as_bytes())
        .expect("ec key");
    let mut jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("ec-1".into());
    std::fs::write(dir.join("certs.json"), json!({"keys": [jwk]}).to_string()).expect("write");
    Keys {
        rsa: EncodingKey::from_rsa_pem(pem(&rsa).as_bytes()).expect("rsa key"),
        ec,
        other_rsa: EncodingKey::from_rsa_pem(pem(&other).as_bytes()).expect("rsa key"),
        rsa_public_pem,
    }
}

const ISSUER: &str = "https://keycloak.example/realms/labelhost";

/// A Keycloak-shaped token for `user` with realm roles `roles`, expiring in `ttl` seconds.
fn jwt(
    key: &EncodingKey,
    alg: Algorithm,
    kid: Option<&str>,
    user: &str,
    roles: &[&str],
    ttl: i64,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = json!({
        "iss": ISSUER, "exp": now + ttl, "iat": now, "preferred_username": user,
        "email": format!("{user}@example.org"), "name": user,
        "realm_access": {"roles": roles},
    });
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).expect("sign")
}

fn send(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::blocking::Response {
    let mut req = client().request(method, server.at(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().expect("request")
}

#[test]
fn tokens_and_jwts_with_monai_label_roles_guard_every_route() {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    let keys = keys(ws.dir.path());
    let made: Vec<(&str, String, Value)> = ["user", "annotator", "reviewer", "admin"]
        .into_iter()
        .map(|role| {
            let (token, entry) = make_token(&format!("{role}-person"), role);
            (role, token, entry)
        })
        .collect();
    let config = json!({
        "tokens": made.iter().map(|(_, _, e)| e.clone()).collect::<Vec<_>>(),
        "jwt": {"public_keys": ["realm.pem"], "jwks": "certs.json", "issuer": ISSUER},
        "realm": ISSUER,
    });
    let config_path = ws.dir.path().join("auth.json");
    std::fs::write(&config_path, config.to_string()).expect("write");
    assert!(!std::fs::read_to_string(&config_path)
        .expect("read")
        .contains(&made[0].1));
    let server = ws.serve_with(
        &[],
        &["--auth-config", config_path.to_str().expect("utf-8")],
    );
    let token = |role: &str| made.iter().find(|m| m.0 == role).expect("role").1.clone();

    // MONAI Label's handshake, as Slicer's module does it.
    let auth = send(&server, Method::GET, "/auth/", None)
        .json::<Value>()
        .expect("json");
    assert_eq!(
        auth,
        json!({"enabled": true, "client_id": "monailabel-app", "realm": ISSUER})
    );
    let login = |user: &str, password: &str| {
        client()
            .post(server.at("/auth/token"))
            .form(&[
                ("username", user),
                ("password", password),
                ("grant_type", "password"),
            ])
            .send()
            .expect("login")
    };
    let r = login("annotator-person", &token("annotator"));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().expect("json")["access_token"],
        token("annotator")
    );
    let r = login("user-person", &token("annotator"));
    assert_eq!(r.status(), 401, "another user's token");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let me = send(
        &server,
        Method::GET,
        "/auth/token/valid",
        Some(&token("reviewer")),
    );
    assert_eq!(
        me.json::<Value>().expect("json"),
        json!({"username": "reviewer-person", "email": "", "name": "reviewer-person", "roles": ["reviewer"]})
    );

    // No credentials, wrong ones: 401 everywhere but the public routes.
    assert_eq!(send(&server, Method::GET, "/health", None).status(), 200);
    for bad in [
        None,
        Some("not-a-token"),
        Some(made[0].2["sha256"].as_str().expect("digest")),
    ] {
        let r = send(&server, Method::GET, "/datastore/", bad);
        assert_eq!(r.status(), 401, "{bad:?}");
        let body: Value = r.json().expect("typed JSON");
        assert_eq!(body["code"], "UNAUTHORIZED");
    }

    // Every role against every route (harmless arguments: missing ids answer 404/422,
    // which still shows the guard let the caller through).
    let routes: &[(Method, &str, &str)] = &[
        (Method::GET, "/info/", "user"),
        (Method::GET, "/apps", "user"),
        (Method::POST, "/infer/nope?image=img00", "user"),
        (Method::POST, "/activelearning/nope", "user"),
        (Method::GET, "/datastore/", "user"),
        (Method::GET, "/datastore/image?image=nope", "user"),
        (Method::HEAD, "/datastore/image?image=nope", "user"),
        (Method::GET, "/datastore/image/info?image=nope", "user"),
        (Method::GET, "/datastore/label?label=nope&tag=final", "user"),
        (Method::GET, "/train/", "user"),
        (Method::GET, "/scoring/", "user"),
        (Method::GET, "/batch/infer", "user"),
        (Method::GET, "/session/nope", "user"),
        (Method::PUT, "/datastore/image?image=x", "annotator"),
        (Method::PUT, "/datastore/?image=x", "annotator"),
        (Method::PUT, "/datastore/label?image=nope", "annotator"),
        (Method::PUT, "/datastore/image/info?image=nope", "annotator"),
        (
            Method::PUT,
            "/datastore/label/info?label=nope&tag=final",
            "annotator",
        ),
        (Method::POST, "/scoring/nope", "annotator"),
        (Method::GET, "/datastore/dataset", "annotator"),
        (Method::DELETE, "/datastore/image?id=nope", "admin"),
        (
            Method::DELETE,
            "/datastore/label?id=nope&tag=final",
            "admin",
        ),
        (Method::POST, "/train/nope", "admin"),
        (Method::DELETE, "/train/", "admin"),
        (Method::POST, "/batch/infer/nope", "admin"),
        (Method::GET, "/model/info/nope", "admin"),
        (Method::GET, "/logs/", "admin"),
        (Method::POST, "/apps/nope/reload", "admin"),
        (Method::DELETE, "/apps/nope", "admin"),
    ];
    let order = ["user", "annotator", "reviewer", "admin"];
    let rank = |r: &str| order.iter().position(|o| *o == r).expect("role");
    for (method, path, needed) in routes {
        for role in order {
            let r = send(&server, method.clone(), path, Some(&token(role)));
            let status = r.status().as_u16();
            if rank(role) < rank(needed) {
                assert_eq!(status, 403, "{role} {method} {path}");
                if *method != Method::HEAD {
                    let body: Value = r.json().expect("typed 403");
                    assert_eq!(
                        body["detail"],
                        format!("Role \"{needed}\" is required to perform this action")
                    );
                }
            } else {
                assert!(
                    ![401, 403].contains(&status),
                    "{role} {method} {path}: {status}"
                );
            }
        }
    }

    // JWTs as a Keycloak realm signs them.
    let annotator = jwt(
        &keys.rsa,
        Algorithm::RS256,
        None,
        "ann",
        &["monailabel-annotator"],
        300,
    );
    let label = std::fs::read(ws.studies().join("img00.nii.gz")).expect("read");
    let put_label = |token: &str| {
        let form = Form::new().part("label", Part::bytes(label.clone()).file_name("l.nii.gz"));
        client()
            .put(server.at("/datastore/label?image=img00"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .expect("label")
            .status()
    };
    assert_eq!(put_label(&annotator), 200, "RS256 from the realm's PEM key");
    let me = send(&server, Method::GET, "/auth/token/valid", Some(&annotator));
    assert_eq!(
        me.json::<Value>().expect("json")["email"],
        "ann@example.org"
    );
    let admin = jwt(
        &keys.ec,
        Algorithm::ES256,
        Some("ec-1"),
        "boss",
        &["monailabel-admin"],
        300,
    );
    assert_eq!(
        send(&server, Method::GET, "/logs/?text=true", Some(&admin)).status(),
        200,
        "ES256 from the JWKS"
    );
    let no_roles = jwt(
        &keys.rsa,
        Algorithm::RS256,
        None,
        "nobody",
        &["offline_access"],
        300,
    );
    assert_eq!(
        send(&server, Method::GET, "/info/", Some(&no_roles)).status(),
        403
    );

    let expired = jwt(
        &keys.rsa,
        Algorithm::RS256,
        None,
        "ann",
        &["monailabel-admin"],
        -60,
    );
    let forged = jwt(
        &keys.other_rsa,
        Algorithm::RS256,
        None,
        "ann",
        &["monailabel-admin"],
        300,
    );
    let wrong_kid = jwt(
        &keys.ec,
        Algorithm::ES256,
        Some("ec-2"),
        "ann",
        &["monailabel-admin"],
        300,
    );
    // The classic confusion: HS256 keyed with the public key the server trusts.
    let confused = jwt(
        &EncodingKey::from_secret(keys.rsa_public_pem.as_bytes()),
        Algorithm::HS256,
        None,
        "ann",
        &["monailabel-admin"],
        300,
    );
    let unsigned = {
        let mut parts: Vec<&str> = annotator.split('.').collect();
        parts[2] = "";
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        format!("{none_header}.{}.", parts[1])
    };
    let other_issuer = {
        let claims = json!({"iss": "https://elsewhere", "exp": 4_000_000_000u64, "realm_access": {"roles": ["monailabel-admin"]}});
        encode(&Header::new(Algorithm::RS256), &claims, &keys.rsa).expect("sign")
    };
    for (what, token) in [
        ("expired", &expired),
        ("forged", &forged),
        ("unknown kid", &wrong_kid),
        ("HS256 with the public key", &confused),
        ("alg none", &unsigned),
        ("another issuer", &other_issuer),
    ] {
        assert_eq!(
            send(&server, Method::GET, "/info/", Some(token)).status(),
            401,
            "{what}"
        );
    }
    assert!(
        !server.log().contains(&token("admin")),
        "a token in the log"
    );
}

#[test]
fn without_auth_app_management_stays_on_loopback() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let wide = ws.serve_with(&[], &["--host", "0.0.0.0"]);
    let r = send(&wide, Method::POST, "/apps/brain/reload", None);
    assert_eq!(r.status(), 403);
    let body: Value = r.json().expect("typed JSON");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("--auth-config"),
        "{body}"
    );
    assert_eq!(
        send(&wide, Method::GET, "/info/", None).status(),
        200,
        "the rest stays open"
    );
    assert_eq!(
        send(&wide, Method::GET, "/auth/", None).status(),
        404,
        "auth is off"
    );
    drop(wide);
    let local = ws.serve(&[]);
    assert_eq!(
        send(&local, Method::POST, "/apps/brain/reload", None).status(),
        200
    );
}
