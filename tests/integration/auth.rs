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
pub(crate) fn make_token(username: &str, role: &str) -> (String, Value) {
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

/// `POST /auth/token` as MONAI Label's clients send it (OAuth2's password form).
fn login(server: &Server, user: &str, password: &str) -> reqwest::blocking::Response {
    client()
        .post(server.at("/auth/token"))
        .form(&[
            ("username", user),
            ("password", password),
            ("grant_type", "password"),
        ])
        .send()
        .expect("login")
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
    let r = login(&server, "annotator-person", &token("annotator"));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().expect("json")["access_token"],
        token("annotator")
    );
    let r = login(&server, "user-person", &token("annotator"));
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
        // A client cannot claim another name: the label records the token's user.
        let form = Form::new()
            .text("params", r#"{"user": "someone-else"}"#)
            .part("label", Part::bytes(label.clone()).file_name("l.nii.gz"));
        client()
            .put(server.at("/datastore/label?image=img00"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .expect("label")
            .status()
    };
    assert_eq!(put_label(&annotator), 200, "RS256 from the realm's PEM key");
    let info = send(
        &server,
        Method::GET,
        "/datastore/label/info?label=img00&tag=final",
        Some(&annotator),
    );
    assert_eq!(
        info.json::<Value>().expect("json")["user"],
        "ann",
        "who saved it"
    );
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

/// A Keycloak-shaped token endpoint on `listener`: OAuth2's password grant for `alice`
/// with password `wonder land&more` (client `monailabel-app`) answers a realm token signed
/// with `key`; user `setup` gets Keycloak's `unauthorized_client` (a realm set-up error);
/// anything else is Keycloak's 401 `invalid_grant`. Serves until the test ends.
fn realm_token_endpoint(listener: std::net::TcpListener, key: EncodingKey) {
    use std::io::{BufRead, BufReader, Read, Write};
    fn decode(v: &str) -> String {
        let bytes = v.replace('+', " ").into_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(b)) => (out.push(b), i += 3).1,
                (c, _) => (out.push(c), i += 1).1,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let form: std::collections::HashMap<String, String> = String::from_utf8_lossy(&body)
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect();
            let field = |k: &str| form.get(k).map(String::as_str);
            let granted = field("grant_type") == Some("password")
                && field("client_id") == Some("monailabel-app")
                && field("username") == Some("alice")
                && field("password") == Some("wonder land&more");
            let (status, answer) = if granted {
                let token = jwt(
                    &key,
                    Algorithm::RS256,
                    None,
                    "alice",
                    &["monailabel-reviewer"],
                    300,
                );
                let answer = json!({"access_token": token, "token_type": "Bearer",
                                    "expires_in": 300, "scope": "profile email"});
                ("200 OK", answer)
            } else if field("username") == Some("setup") {
                // A realm whose client may not use the password grant.
                let answer = json!({"error": "unauthorized_client",
                                    "error_description": "Client not allowed for direct access grants"});
                ("400 Bad Request", answer)
            } else {
                let answer = json!({"error": "invalid_grant",
                                    "error_description": "Invalid user credentials"});
                ("401 Unauthorized", answer)
            };
            let answer = answer.to_string();
            let mut conn = reader.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
}

#[test]
fn a_password_login_is_passed_to_the_realm_as_monai_label_does() {
    let ws = Workspace::new(1, 8);
    let keys = keys(ws.dir.path());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let realm = format!(
        "http://{}/realms/labelhost",
        listener.local_addr().expect("addr")
    );
    realm_token_endpoint(listener, keys.rsa);
    let (api_token, entry) = make_token("ann", "annotator");
    let config_path = ws.dir.path().join("auth.json");
    let write_config = |token_url: &str| {
        let config = json!({
            "tokens": [entry],
            "jwt": {"public_keys": ["realm.pem"], "issuer": ISSUER},
            "realm": realm,
            "token_url": token_url,
        });
        std::fs::write(&config_path, config.to_string()).expect("write");
    };
    write_config(&format!("{realm}/protocol/openid-connect/token"));
    let args = ["--auth-config", config_path.to_str().expect("utf-8")];
    let server = ws.serve_with(&[], &args);

    // Slicer's module: a user name and password, the realm's token back, then its use.
    let r = login(&server, "alice", "wonder land&more");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().expect("json");
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert_eq!(answer["expires_in"], 300, "passed on as the realm answered");
    let token = answer["access_token"].as_str().expect("access_token");
    let me = send(&server, Method::GET, "/auth/token/valid", Some(token));
    assert_eq!(me.status(), 200);
    let me: Value = me.json().expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["roles"], json!(["reviewer"]), "{me}");
    // A wrong password: the realm refuses, and so does the server, as for a bad token.
    let r = login(&server, "alice", "wonderland");
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().expect("json")["code"], "UNAUTHORIZED");
    // A realm refusing this server's client is its set-up, not a wrong password: 502.
    let r = login(&server, "setup", "anything");
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().expect("json")["code"], "UPSTREAM_ERROR");
    // A static token still logs in without the realm.
    let r = login(&server, "ann", &api_token);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json")["access_token"], api_token);
    assert!(
        !server.log().contains("wonder land"),
        "a password in the log"
    );
    drop(server);

    // A realm that does not answer: 502 naming no address; tokens keep working.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = format!("http://{}/token", closed.local_addr().expect("addr"));
    drop(closed);
    write_config(&nowhere);
    let server = ws.serve_with(&[], &args);
    let r = login(&server, "alice", "wonder land&more");
    assert_eq!(r.status(), 502);
    let body: Value = r.json().expect("typed JSON");
    assert_eq!(body["code"], "UPSTREAM_ERROR");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    assert_eq!(login(&server, "ann", &api_token).status(), 200);
    drop(server);

    // A token URL that is not http(s) stops the server at start, naming the field.
    write_config("ftp://realm/token");
    let out = std::process::Command::new(binary())
        .args(["serve", "--port", "0", "--studies"])
        .arg(ws.studies())
        .args(["--plugins"])
        .arg(ws.plugins())
        .args(args)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token_url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
