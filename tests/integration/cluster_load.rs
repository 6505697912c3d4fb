//! Three hosts over one studies folder and one PostgreSQL, behind the tests' balancer:
//! 50 annotators (next sample, k-means inference, final label) for 60 s while one host is
//! killed and started again. Every acknowledged label is there afterwards, byte for byte,
//! on every host; no image went to two annotators. The same load on one host gives the
//! baseline; the throughput of both is printed with their ratio (`scripts/bench.sh
//! cluster` runs this test for the figures; with `LABELHOST_BENCH_HOST_CPUS=0.4` each host
//! gets a CPU quota of its own, as if each were a machine of that size). And an app
//! hot-swapped across the three
//! hosts one at a time (`labelhost apps roll`) while clients infer: no request fails.

use crate::{
    balancer::{addr_of, Balancer},
    cluster::{host, Postgres},
    support::{get_json, pack_segmentation, Server, Workspace},
};
use serde_json::{json, Value};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// What the annotators saw.
#[derive(Default)]
struct Outcome {
    /// `(client, image)` for every image a next-sample request answered.
    served: Vec<(String, String)>,
    /// Image → the label bytes whose save was acknowledged (200).
    acked: BTreeMap<String, Vec<u8>>,
    /// Requests that failed (a host killed mid-request, none reachable).
    failures: usize,
}

/// One annotator's loop until `until` or until no image is left.
fn annotate(url: &str, client_id: &str, until: Instant, out: &Mutex<Outcome>) {
    // A connection per request: the balancer spreads requests, not connections.
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let fail = || {
        out.lock().expect("outcome").failures += 1;
        std::thread::sleep(Duration::from_millis(50));
    };
    while Instant::now() < until {
        let sample = http
            .post(format!("{url}/activelearning/random"))
            .json(&json!({"client_id": client_id}))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json::<Value>());
        let Ok(sample) = sample else {
            fail();
            continue;
        };
        let Some(image) = sample["id"].as_str().map(str::to_owned) else {
            return; // nothing left
        };
        out.lock()
            .expect("outcome")
            .served
            .push((client_id.to_owned(), image.clone()));
        let label = http
            .post(format!(
                "{url}/infer/segmentation_kmeans?image={image}&output=image&save_label=false"
            ))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.bytes());
        let Ok(label) = label else {
            fail();
            continue;
        };
        let form = reqwest::blocking::multipart::Form::new().part(
            "label",
            reqwest::blocking::multipart::Part::bytes(label.to_vec()).file_name("l.nii.gz"),
        );
        let saved = http
            .put(format!("{url}/datastore/label?image={image}&tag=final"))
            .multipart(form)
            .send()
            .and_then(|r| r.error_for_status());
        match saved {
            Ok(_) => {
                out.lock()
                    .expect("outcome")
                    .acked
                    .insert(image, label.to_vec());
            }
            Err(_) => fail(),
        }
    }
}

/// `clients` annotators against `url` for `secs`; `during` runs meanwhile on this thread.
/// Answers what they saw and the seconds they ran.
fn load(url: &str, clients: usize, secs: u64, during: impl FnOnce()) -> (Outcome, f64) {
    let out = Arc::new(Mutex::new(Outcome::default()));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (url, out) = (url.to_owned(), out.clone());
            std::thread::spawn(move || annotate(&url, &format!("annotator{i:02}"), until, &out))
        })
        .collect();
    during();
    for t in threads {
        t.join().expect("annotator");
    }
    let took = start.elapsed().as_secs_f64();
    let out = std::mem::take(&mut *out.lock().expect("outcome"));
    (out, took)
}

/// No image went to two annotators; every acknowledged label is on every host in `hosts`.
fn check(out: &Outcome, hosts: &[&Server]) {
    let mut by_image: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (client, image) in &out.served {
        by_image.entry(image).or_default().insert(client);
    }
    let shared: Vec<_> = by_image.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "images served to two annotators: {shared:?}"
    );
    let http = crate::support::client();
    for server in hosts {
        let completed = get_json(server, "/datastore/?output=stats")["completed"]
            .as_u64()
            .unwrap_or(0) as usize;
        assert!(
            completed >= out.acked.len(),
            "{completed} final labels, {} acknowledged",
            out.acked.len()
        );
        for (image, bytes) in &out.acked {
            let stored = http
                .get(server.at(&format!("/datastore/label?label={image}&tag=final")))
                .send()
                .expect("label")
                .bytes()
                .expect("bytes");
            assert!(
                stored == bytes.as_slice(),
                "{image}: the acknowledged label"
            );
        }
    }
}

/// With `LABELHOST_BENCH_HOST_CPUS=C`: puts `server` in a cgroup (v1 `cpu` controller) of
/// its own with a quota of C CPUs, so each host is a machine of that size; answers the
/// cgroup's folder (removed by [`unlimit`]).
fn limit_cpu(server: &Server, name: &str) -> Option<std::path::PathBuf> {
    let cpus: f64 = std::env::var("LABELHOST_BENCH_HOST_CPUS")
        .ok()?
        .parse()
        .ok()?;
    let dir = std::path::PathBuf::from(format!(
        "/sys/fs/cgroup/cpu/labelhost-bench-{name}-{}",
        server.pid()
    ));
    std::fs::create_dir_all(&dir).expect("a cpu cgroup (root and cgroup v1 needed)");
    std::fs::write(dir.join("cpu.cfs_period_us"), "100000").expect("period");
    let quota = (cpus * 100_000.0) as u64;
    std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).expect("quota");
    std::fs::write(dir.join("cgroup.procs"), server.pid().to_string()).expect("move");
    Some(dir)
}

/// Removes the cgroups of [`limit_cpu`] (their processes ended).
fn unlimit(dirs: Vec<Option<std::path::PathBuf>>) {
    for dir in dirs.into_iter().flatten() {
        let _ = std::fs::remove_dir(dir);
    }
}

const CLIENTS: usize = 50;
/// Images in each studies folder (more than either run labels).
const IMAGES: usize = 4000;

#[test]
fn three_hosts_behind_a_balancer_serve_fifty_annotators_through_a_host_restart() {
    // One host alone: the baseline (20 s).
    let (pg1, ws1) = (Postgres::start(), Workspace::new(IMAGES, 8));
    pack_segmentation(&ws1.plugins());
    let mut alone = host(&ws1, &pg1, "alone", &[]);
    let mut cgroups = vec![limit_cpu(&alone, "alone")];
    let lb1 = Balancer::start(vec![addr_of(&alone.url)]);
    let (base, base_secs) = load(&lb1.url, CLIENTS, 20, || {});
    let base_cpu = alone.cpu_seconds();
    check(&base, &[&alone]);
    alone.kill();
    drop((lb1, alone, pg1));

    // Three hosts; the second killed at 20 s and started again at 30 s (same name).
    let (pg, ws) = (Postgres::start(), Workspace::new(IMAGES, 8));
    pack_segmentation(&ws.plugins());
    let names = ["h1", "h2", "h3"];
    let mut hosts: Vec<Server> = names.iter().map(|n| host(&ws, &pg, n, &[])).collect();
    cgroups.extend(hosts.iter().zip(names).map(|(h, n)| limit_cpu(h, n)));
    let lb = Balancer::start(hosts.iter().map(|h| addr_of(&h.url)).collect());
    let mut killed_cpu = 0.0;
    let (out, secs) = load(&lb.url, CLIENTS, 60, || {
        std::thread::sleep(Duration::from_secs(20));
        killed_cpu = hosts[1].cpu_seconds();
        hosts[1].kill();
        std::thread::sleep(Duration::from_secs(10));
        hosts[1] = host(&ws, &pg, "h2", &[]);
        cgroups.push(limit_cpu(&hosts[1], "h2-again"));
        lb.set(1, Some(addr_of(&hosts[1].url)));
    });
    let cpu = killed_cpu + hosts.iter().map(Server::cpu_seconds).sum::<f64>();
    assert!(!out.acked.is_empty(), "no label was saved");
    check(&out, &hosts.iter().collect::<Vec<_>>());

    for h in &mut hosts {
        h.kill();
    }
    unlimit(cgroups);
    let rate = |o: &Outcome, s: f64| o.acked.len() as f64 / s;
    let quota = std::env::var("LABELHOST_BENCH_HOST_CPUS")
        .map_or("no CPU quota".to_owned(), |c| format!("{c} CPU per host"));
    let (one, three) = (rate(&base, base_secs), rate(&out, secs));
    let per_label = |cpu: f64, o: &Outcome| 1000.0 * cpu / o.acked.len().max(1) as f64;
    eprintln!(
        "cluster load ({quota}): {CLIENTS} annotators, {IMAGES} images; 1 host: {} labels in \
         {base_secs:.1} s = {one:.1}/s ({} failed requests, {:.1} ms of host CPU per label); \
         3 hosts (one killed at 20 s, back at 30 s): {} labels in {secs:.1} s = {three:.1}/s \
         ({} failed requests, {:.1} ms of host CPU per label); ratio 3 vs 1: {:.2}",
        base.acked.len(),
        base.failures,
        per_label(base_cpu, &base),
        out.acked.len(),
        out.failures,
        per_label(cpu, &out),
        three / one.max(1e-9)
    );
}

/// Runs `labelhost apps roll` with `args`; answers its exit success and output.
fn roll(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::support::binary())
        .args(["apps", "roll"])
        .args(args)
        .output()
        .expect("labelhost apps roll");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The app's generation on a host.
fn generation(server: &Server, app: &str) -> u64 {
    get_json(server, "/apps")["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == app)
        .and_then(|a| a["generation"].as_u64())
        .unwrap_or(0)
}

#[test]
fn an_app_hot_swapped_across_three_hosts_one_at_a_time_fails_no_request() {
    let (pg, ws) = (Postgres::start(), Workspace::new(4, 16));
    pack_segmentation(&ws.plugins());
    let hosts: Vec<Server> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| host(&ws, &pg, n, &[]))
        .collect();
    let lb = Balancer::start(hosts.iter().map(|h| addr_of(&h.url)).collect());
    // Eight clients infer through the balancer until the roll is over.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (url, stop) = (lb.url.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                let (mut ok, mut failed) = (0usize, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let url = format!(
                        "{url}/infer/segmentation_kmeans?image=img{:02}&output=json&save_label=false",
                        i % 4
                    );
                    match http.post(url).send() {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => failed.push(r.status().to_string()),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let urls: Vec<&str> = hosts.iter().map(|h| h.url.as_str()).collect();
    let list = urls.join(",");
    let (ok, text) = roll(&[
        "segmentation",
        "--hosts",
        &list,
        "--expect-version",
        "0.1.0",
    ]);
    assert!(ok, "{text}");
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut served, mut failed) = (0, Vec::new());
    for c in clients {
        let (ok, f) = c.join().expect("client");
        served += ok;
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "failed requests during the roll: {failed:?}"
    );
    assert!(served > 0);
    // One host after another, each now on generation 2.
    let order: Vec<usize> = urls
        .iter()
        .map(|u| {
            text.find(&format!("{u}: segmentation generation 1 -> 2"))
                .expect(&text)
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    for h in &hosts {
        assert_eq!(generation(h, "segmentation"), 2);
    }
    // A host that loads another version stops the roll: the others keep theirs.
    let (ok, text) = roll(&[
        "segmentation",
        "--hosts",
        &list,
        "--expect-version",
        "9.9.9",
    ]);
    assert!(
        !ok && text.contains("not 9.9.9") && text.contains("2 hosts not swapped"),
        "{text}"
    );
    let now: Vec<u64> = hosts
        .iter()
        .map(|h| generation(h, "segmentation"))
        .collect();
    assert_eq!(now, vec![3, 2, 2]);
}
