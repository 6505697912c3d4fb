//! Active learning: claims shared by every strategy, uncertainty strategies, scoring.

use crate::support::{client, pack_first_party, Server, Workspace};
use serde_json::{json, Value};

fn next(server: &Server, strategy: &str, client_id: Option<&str>) -> Value {
    let body = client_id.map_or(json!({}), |c| json!({ "client_id": c }));
    let r = client()
        .post(server.at(&format!("/activelearning/{strategy}")))
        .json(&body)
        .send()
        .expect("next sample");
    assert_eq!(r.status(), 200);
    r.json().expect("json")
}

#[test]
fn annotators_asking_at_once_never_get_the_same_image_while_a_claim_is_fresh() {
    let ws = Workspace::new(3, 8);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    // Six annotators at once over three images: three are served, each a different one.
    let served: Vec<Value> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                s.spawn(move || next(server, "first", Some(&format!("ann{i}"))))
            })
            .collect();
        asks.into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut ids: Vec<&str> = served.iter().filter_map(|s| s["id"].as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["img00", "img01", "img02"], "{served:?}");
    assert_eq!(served.iter().filter(|s| *s == &json!({})).count(), 3);
    // An annotator asking again gets their own image back, by any strategy.
    let mine = served.iter().find(|s| s["id"] == "img01").expect("img01");
    let holder = mine["strategy"]["first"]["client_id"]
        .as_str()
        .expect("holder");
    assert_eq!(next(&server, "first", Some(holder))["id"], "img01");
    assert_eq!(next(&server, "last", Some(holder))["id"], "img01");
    // Anonymous requests are each another client.
    assert_eq!(next(&server, "random", None), json!({}));
    drop(server);

    // With claims of one second, a stale claim is served to someone else.
    let server = ws.serve_with(&[], &["--claim-seconds", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let s = next(&server, "first", Some("late"));
    assert_eq!(s["id"], "img00", "{s}");
    assert_eq!(s["strategy"]["first"]["client_id"], "late");
}
