//! `GET /metrics`: Prometheus' text for what a request did, read back after real requests.

use crate::support::{client, pack_first_party, Workspace};
use std::collections::BTreeMap;

/// Each sample line as `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn metrics_count_requests_time_inference_stages_and_read_the_server_at_each_scrape() {
    let ws = Workspace::new(2, 24);
    pack_first_party(&ws.plugins());
    let server = ws.serve(&[]);
    let http = client();
    for _ in 0..2 {
        let r = http
            .post(server.at("/infer/brain_otsu?image=img00&output=json"))
            .send()
            .expect("infer");
        assert_eq!(r.status(), 200);
    }
    let missing = http.get(server.at("/datastore/image?image=nope")).send();
    assert_eq!(missing.expect("get").status(), 404);
    assert_eq!(
        http.get(server.at("/no/such/route"))
            .send()
            .expect("get")
            .status(),
        404
    );

    let r = http.get(server.at("/metrics")).send().expect("metrics");
    assert_eq!(r.status(), 200);
    let kind = r.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = r.text().expect("text");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let s = samples(&text);
    let at = |key: &str| *s.get(key).unwrap_or_else(|| panic!("no {key} in\n{text}"));
    assert_eq!(
        at(r#"labelhost_http_requests_total{route="/infer/{model}",method="POST",status="200"}"#),
        2.0
    );
    assert_eq!(
        at(r#"labelhost_http_requests_total{route="/datastore/image",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        at(r#"labelhost_http_requests_total{route="unmatched",method="GET",status="404"}"#),
        1.0
    );
    assert_eq!(
        at(r#"labelhost_http_request_seconds_count{route="/infer/{model}"}"#),
        2.0
    );
    // The task's own stage times, each inference once per stage.
    let stages: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with(r#"labelhost_infer_stage_seconds_count{model="brain_otsu""#))
        .collect();
    assert!(!stages.is_empty(), "{text}");
    assert!(stages.iter().all(|k| s[*k] == 2.0), "{text}");
    assert_eq!(
        at(r#"labelhost_queue_wait_seconds_count{device="cpu"}"#),
        2.0
    );
    assert_eq!(at(r#"labelhost_queue{device="cpu",state="running"}"#), 0.0);
    assert!(at(r#"labelhost_queue{device="cpu",state="slots"}"#) >= 1.0);
    assert_eq!(at(r#"labelhost_apps{what="loaded"}"#), 2.0);
    assert_eq!(at(r#"labelhost_apps{what="libraries_mapped"}"#), 2.0);
    assert!(at(r#"labelhost_memory_bytes{kind="resident"}"#) > 1e6);
    // Ids never become labels: the image asked for is nowhere in the text.
    assert!(!text.contains("nope") && !text.contains("img00"), "{text}");
    assert!(s.contains_key(r#"labelhost_apps{what="live_tensors",app="segmentation"}"#));

    // A retired app's levels go with it.
    let r = http
        .delete(server.at("/apps/segmentation"))
        .send()
        .expect("retire");
    assert_eq!(r.status(), 200);
    let text = http
        .get(server.at("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    let s = samples(&text);
    assert_eq!(s[r#"labelhost_apps{what="loaded"}"#], 1.0, "{text}");
    assert!(
        !s.contains_key(r#"labelhost_apps{what="live_tensors",app="segmentation"}"#),
        "{text}"
    );
    assert!(
        s.contains_key(r#"labelhost_apps{what="live_tensors",app="brain"}"#),
        "{text}"
    );
}
