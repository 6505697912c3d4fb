//! Requests that would hold the server: a task or strategy that hangs is answered 504 at
//! its time limit and its device slot goes back; a client that leaves has its work stopped; sliding-window
//! parameters that would take hours or exhaust memory are refused with 400 naming them.

use crate::support::{client, pack, pack_first_party, Server, Workspace};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn infer(server: &Server, model: &str, params: Value) -> reqwest::blocking::Response {
    client()
        .post(server.at(&format!("/infer/{model}?image=img00&output=json")))
        .json(&params)
        .send()
        .expect("infer")
}

/// A server over the first-party apps and the `panicky` fixture (its `slow_infer` and
/// `calm` sleep as asked), started with `flags`.
fn with_panicky(flags: &[&str]) -> (Workspace, Server) {
    let ws = Workspace::new(1, 16);
    pack_first_party(&ws.plugins());
    pack(&ws.plugins(), "panicky", "panic_app", &[]);
    let server = ws.serve_with(&[], flags);
    (ws, server)
}

/// Waits up to a minute for `words` in the server's log.
fn log_says(server: &Server, words: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if server.log().contains(words) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_hanging_task_is_answered_504_and_its_slot_goes_back() {
    let (_ws, server) = with_panicky(&[
        "--device-workers",
        "1",
        "--task-timeout",
        "slow_infer=1",
        "--task-timeout",
        "calm=1",
    ]);
    // An hour of sleep in plugin code: no executor call can stop it, the answer still comes.
    let r = infer(&server, "slow_infer", json!({"ms": 3_600_000}));
    assert_eq!(r.status(), 504);
    let body: Value = r.json().expect("typed JSON");
    assert_eq!(body["code"], "TIMEOUT");
    assert!(body["detail"]
        .as_str()
        .expect("detail")
        .contains("slow_infer"));
    // The one device slot is free again: another model answers while the sleeper sleeps.
    // (The sleeper sleeps at most 10 s: a held slot would make this wait past 6 s.)
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(6))
        .build()
        .expect("client");
    let r = quick
        .post(server.at("/infer/brain_otsu?image=img00&output=json"))
        .send()
        .expect("answered while the hung task still runs");
    assert_eq!(r.status(), 200);
    // A strategy has a time limit too.
    let r = client()
        .post(server.at("/activelearning/calm"))
        .json(&json!({"ms": 3_000}))
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 504);
    let body: Value = r.json().expect("typed JSON");
    assert_eq!(body["code"], "TIMEOUT");
    assert!(body["detail"].as_str().expect("detail").contains("calm"));
    let r = client()
        .post(server.at("/activelearning/calm"))
        .json(&json!({}))
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().expect("json")["id"], "img00");
    assert_eq!(crate::support::get_json(&server, "/health")["status"], "ok");
}

#[test]
fn calls_left_running_by_timed_out_requests_are_capped_per_app() {
    let (_ws, server) = with_panicky(&[
        "--device-workers",
        "2",
        "--task-timeout",
        "slow_infer=1",
        "--max-abandoned",
        "2",
    ]);
    // Two sleepers time out; their threads sleep on (plugin code, nothing can stop them).
    for _ in 0..2 {
        assert_eq!(
            infer(&server, "slow_infer", json!({"ms": 8_000})).status(),
            504
        );
    }
    let apps = crate::support::get_json(&server, "/apps");
    let panicky = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["name"] == "panicky")
        .expect("panicky")
        .clone();
    assert_eq!(panicky["abandoned_calls"], 2, "{panicky}");
    // A third is refused at once instead of tying up another thread.
    let start = Instant::now();
    let r = infer(&server, "slow_infer", json!({"ms": 10}));
    assert_eq!(r.status(), 503);
    assert!(start.elapsed() < Duration::from_secs(1));
    let body: Value = r.json().expect("typed JSON");
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("--max-abandoned 2"),
        "{body}"
    );
    // Other apps serve meanwhile; once the sleepers return, this one does again.
    assert_eq!(infer(&server, "brain_otsu", json!({})).status(), 200);
    let start = Instant::now();
    loop {
        let r = infer(&server, "slow_infer", json!({"ms": 10}));
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sleepers returned"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn work_stops_when_its_client_leaves_or_its_time_is_up() {
    let ws = Workspace::new(1, 64);
    crate::support::pack_segmentation(&ws.plugins());
    let server = ws.serve_with(
        &[],
        &[
            "--device-workers",
            "1",
            "--task-timeout",
            "segmentation_unet=2",
        ],
    );
    // 16³ windows at overlap 0.75 over 64³: 2,197 UNet passes, far longer than 2 s.
    let slow = json!({"roi_size": [16, 16, 16], "sw_overlap": 0.75, "sw_batch_size": 1});
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let gone = impatient
        .post(server.at("/infer/segmentation_unet?image=img00&output=json"))
        .json(&slow)
        .send();
    assert!(gone.is_err(), "the client gave up");
    assert!(
        log_says(&server, "work cancelled: its client went away"),
        "{}",
        server.log()
    );
    let r = infer(&server, "segmentation_unet", slow);
    assert_eq!(r.status(), 504);
    assert!(
        log_says(&server, "work cancelled: it ran past its time limit"),
        "{}",
        server.log()
    );
    // Both stopped: the one worker answers a normal request.
    let r = infer(&server, "segmentation_unet", json!({}));
    assert_eq!(r.status(), 200);
}

#[test]
fn sliding_window_parameters_out_of_bounds_are_refused_by_name() {
    // 64³: 16³ windows at overlap 0.99 would be 49³ = 117,649 passes.
    let ws = Workspace::new(1, 64);
    crate::support::pack_segmentation(&ws.plugins());
    let server = ws.serve(&[]);
    for (params, words) in [
        (json!({"roi_size": [384, 384, 384]}), "roi_size"),
        (json!({"roi_size": [4, 4, 4]}), "roi_size"),
        (
            json!({"sw_overlap": 0.99, "roi_size": [16, 16, 16]}),
            "sw_overlap",
        ),
        (json!({"sw_overlap": 1.5}), "sw_overlap"),
        (json!({"sw_batch_size": 0}), "sw_batch_size"),
        (json!({"sw_batch_size": "lots"}), "sw_batch_size"),
        (json!({"sw_mode": "median"}), "sw_mode"),
    ] {
        let r = infer(&server, "segmentation_unet", params.clone());
        assert_eq!(r.status(), 400, "{params}");
        let body: Value = r.json().expect("typed JSON");
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains(words), "{params}: {detail}");
    }
    assert_eq!(infer(&server, "segmentation_unet", json!({})).status(), 200);
}

/// What the server sent on `conn` before it ended the connection (by closing or resetting
/// it); an error when it was still open after 10 s.
fn read_until_closed(conn: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut sent = Vec::new();
    match conn.read_to_end(&mut sent) {
        Ok(_) => Ok(sent),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(sent),
        Err(e) => Err(e),
    }
}

#[test]
fn idle_half_open_and_surplus_connections_are_closed() {
    use std::io::Write;
    use std::net::TcpStream;
    let ws = Workspace::new(1, 8);
    let server = ws.serve_with(&[], &["--max-connections", "64", "--header-timeout", "1"]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    // 300 connections that never send a byte: past the cap (64) they are closed at once,
    // the others when the header timeout (1 s) passes. Each read ends: nothing is held.
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    for (i, conn) in idle.iter_mut().enumerate() {
        let sent = read_until_closed(conn);
        assert!(
            sent.as_ref().is_ok_and(Vec::is_empty),
            "idle connection {i} stayed open: {sent:?}"
        );
    }
    // Half a request's headers: the server ends the connection instead of waiting.
    let mut half = TcpStream::connect(&addr).expect("connect");
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let rest = read_until_closed(&mut half).expect("the server ends a half-sent request");
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "{rest:?}"
    );
    // A body that stops coming: the request ends (400) instead of holding its connection.
    let mut slow = TcpStream::connect(&addr).expect("connect");
    slow.write_all(
        b"PUT /datastore/image?image=slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n\
          --xyz\r\n",
    )
    .expect("write");
    let answer = read_until_closed(&mut slow).expect("a stalled upload ends");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Real clients are served as before.
    assert_eq!(crate::support::get_json(&server, "/health")["status"], "ok");
}

#[test]
fn a_client_waiting_to_be_told_to_send_gets_an_early_answer_at_once() {
    use std::io::Write;
    // `Expect: 100-continue` and a body never sent: the 404 needs none of it, so the
    // answer comes without waiting for the body, and closes the connection.
    let ws = Workspace::new(1, 8);
    let server = ws.serve(&[]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut waiting = std::net::TcpStream::connect(&addr).expect("connect");
    waiting
        .write_all(
            b"PUT /datastore/label?image=nobody HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: multipart/form-data; boundary=xyz\r\n\
              Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("write");
    let answer = read_until_closed(&mut waiting).expect("answered without the body");
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 404"), "{answer}");
    assert!(!answer.contains("100 continue"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("\"detail\""), "{answer}");
    assert_eq!(crate::support::get_json(&server, "/health")["status"], "ok");
}

#[test]
fn a_job_request_kept_in_its_record_is_bounded() {
    let ws = Workspace::new(1, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let huge = json!({"note": "x".repeat(100 << 10)});
    for route in [
        "/train/segmentation_kmeans",
        "/scoring/sum",
        "/batch/infer/brain_otsu",
    ] {
        let r = client()
            .post(server.at(route))
            .json(&huge)
            .send()
            .expect("job");
        assert_eq!(r.status(), 400, "{route}");
        let body: Value = r.json().expect("typed JSON");
        assert!(
            body["detail"]
                .as_str()
                .expect("detail")
                .contains("at most 65536 bytes"),
            "{route}: {body}"
        );
    }
}
