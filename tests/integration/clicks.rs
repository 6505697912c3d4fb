//! Click-guided segmentation on real brains: the click network trained by labelhost with
//! simulated clicks (`POST /train/brain_deepedit`) on two T1 volumes, then driven by a
//! simulated annotator on a third it never saw: DeepEdit's automatic pass, clicks that
//! raise the Dice, a background click that removes a false positive, DeepGrow refining a
//! saved label in a region around one click.

use crate::support::{
    cache_dir, client, dice, get_json, pack, put_label, read_volume, repo_root, write_like,
    write_mask, Server, Workspace,
};
use crate::training::{start, wait_done};
use labelhost_plugin_api::sdk::transforms::distance_inside;
use ndarray::{ArrayD, Dimension};
use serde_json::{json, Value};
use std::{
    path::Path,
    time::{Duration, Instant},
};

/// The brain bundle with the untrained click network.
fn pack_clicks(ws: &Workspace) {
    let otsu = repo_root().join("plugins/brain/assets/otsu.json");
    let net = cache_dir().join("models/brain/brain_deepedit.pt");
    let assets = vec![
        format!("{}=assets/otsu.json", otsu.display()),
        format!("{}=models/brain_deepedit.pt", net.display()),
    ];
    pack(&ws.plugins(), "brain", "labelhost_app_brain", &assets);
}

/// Runs a click task on a datastore image; the mask, or the error's status and body.
fn segment(
    server: &Server,
    task: &str,
    image: &str,
    params: &Value,
    out: &Path,
) -> Result<(ArrayD<f32>, Value), (u16, String)> {
    let r = client()
        .post(server.at(&format!("/infer/{task}?image={image}&output=all")))
        .json(params)
        .send()
        .expect("infer");
    let status = r.status().as_u16();
    if status != 200 {
        return Err((status, r.text().unwrap_or_default()));
    }
    let ctype = r.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_owned();
    let boundary = format!("--{}", ctype.split("boundary=").nth(1).expect("multipart"));
    let body = r.bytes().expect("body").to_vec();
    let (params, label) = (part(&body, &boundary, 0), part(&body, &boundary, 1));
    std::fs::write(out, part_body(label)).expect("write label");
    Ok((
        read_volume(out),
        serde_json::from_slice(part_body(params)).expect("params"),
    ))
}

/// The `n`th part (headers and content) of a multipart body.
fn part<'a>(body: &'a [u8], boundary: &str, n: usize) -> &'a [u8] {
    let b = boundary.as_bytes();
    let marks: Vec<usize> = body
        .windows(b.len())
        .enumerate()
        .filter(|(_, w)| *w == b)
        .map(|(i, _)| i)
        .collect();
    let start = marks[n] + b.len() + 2;
    &body[start..marks[n + 1] - 2]
}

/// A part's content, after its headers.
fn part_body(part: &[u8]) -> &[u8] {
    let at = part
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    &part[at + 4..]
}

/// The voxel of `region` (row-major on `shape`) farthest from its edge, and that distance.
fn deepest(region: &[bool], shape: [usize; 3]) -> ([usize; 3], u32) {
    let d = distance_inside(region, shape);
    let (i, depth) = d
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))
        .map(|(i, v)| (i, *v))
        .unwrap_or((0, 0));
    (
        [
            i / (shape[1] * shape[2]),
            i / shape[2] % shape[1],
            i % shape[2],
        ],
        depth,
    )
}

/// Where the simulated annotator clicks next: into the larger of the missed brain and the
/// false brain, at its voxel farthest from the region's edge, never within 2 voxels of an
/// earlier click (clicking the same spot again would change nothing);
/// `(key, [i, j, k], depth)`.
fn next_click(
    pred: &ArrayD<f32>,
    reference: &ArrayD<f32>,
    earlier: &[[usize; 3]],
) -> (&'static str, [usize; 3], u32) {
    let s = pred.shape();
    let shape = [s[0], s[1], s[2]];
    let region = |f: fn(bool, bool) -> bool| -> Vec<bool> {
        let mut r: Vec<bool> = pred
            .iter()
            .zip(reference.iter())
            .map(|(p, r)| f(*p > 0.0, *r > 0.0))
            .collect();
        for e in earlier {
            let span = |a: usize| e[a].saturating_sub(2)..(e[a] + 3).min(shape[a]);
            for i in span(0) {
                for j in span(1) {
                    for k in span(2) {
                        r[(i * shape[1] + j) * shape[2] + k] = false;
                    }
                }
            }
        }
        r
    };
    let (missed, m) = deepest(&region(|p, r| r && !p), shape);
    let (false_fg, f) = deepest(&region(|p, r| p && !r), shape);
    if m >= f {
        ("brain", missed, m)
    } else {
        ("background", false_fg, f)
    }
}

#[test]
fn clicks_steer_the_brain_mask_of_a_network_labelhost_trained_with_simulated_clicks() {
    let ws = Workspace::new(0, 8);
    let data = cache_dir().join("data");
    let copy = |from: &str, to: &str| {
        std::fs::copy(data.join(from), ws.studies().join(to)).expect("data (scripts/setup.sh)");
    };
    copy("ch2.nii.gz", "ch2.nii.gz");
    copy("KmeansTest_T1UCharRaw.nii.gz", "kmeans.nii.gz");
    copy("heldout/robex_t1.nii.gz", "robex.nii.gz");
    let reference_file = data.join("heldout/robex_mask.nii.gz");
    let reference = read_volume(&reference_file);
    pack_clicks(&ws);
    let server = ws.serve(&[]);
    let out = ws.dir.path().join("result.nii.gz");

    let info = get_json(&server, "/info/");
    assert_eq!(
        info["models"]["brain_deepedit"]["type"], "deepedit",
        "{info}"
    );
    assert_eq!(info["models"]["brain_deepgrow"]["type"], "deepgrow");
    let (status, body) =
        segment(&server, "brain_deepedit", "robex", &json!({}), &out).expect_err("untrained");
    assert!(body.contains("no trained model yet"), "{status} {body}");

    for (id, mask) in [
        ("ch2", "ch2bet.nii.gz"),
        ("kmeans", "KmeansTest_T1RawSkullStrip.nii.gz"),
    ] {
        let file = ws.dir.path().join(format!("{id}_final.nii.gz"));
        write_mask(&data.join(mask), &file, 1);
        put_label(&server, id, "final", &file);
    }
    let started = Instant::now();
    start(
        &server,
        "brain_deepedit",
        &json!({"pretrained": false, "max_epochs": 45}),
    );
    let record = wait_done(&server, Duration::from_secs(1800));
    assert_eq!(record["status"], "DONE", "{record}");
    println!(
        "trained in {:.1} min: {}",
        started.elapsed().as_secs_f64() / 60.0,
        record["train_stats"]
    );

    // DeepEdit: the automatic pass, then clicks one at a time, each answer from all so far.
    let mut clicks = json!({"brain": [], "background": []});
    let (auto, _) = segment(&server, "brain_deepedit", "robex", &clicks, &out).expect("auto");
    let mut pred = auto.clone();
    let mut scores = vec![dice(&auto, &reference)];
    let mut removed = None;
    let mut earlier = Vec::new();
    for n in 1..=10 {
        let (key, at, depth) = next_click(&pred, &reference, &earlier);
        earlier.push(at);
        clicks[key].as_array_mut().expect("list").push(json!(at));
        let before = false_brain_near(&pred, &reference, at);
        let (p, params) =
            segment(&server, "brain_deepedit", "robex", &clicks, &out).expect("clicks");
        assert_eq!(
            params["guidance"][key],
            json!(clicks[key].as_array().map(Vec::len))
        );
        if key == "background" && removed.is_none() {
            removed = Some((
                at,
                depth,
                before,
                false_brain_near(&p, &reference, at),
                p[[at[0], at[1], at[2]]],
            ));
        }
        pred = p;
        scores.push(dice(&pred, &reference));
        println!(
            "click {n}: {key} at {at:?} (depth {depth}): Dice {:.4}",
            scores[n]
        );
    }
    println!("Dice by clicks: {scores:.4?}");
    assert!(
        scores[0] > 0.8,
        "the automatic pass finds the brain: {scores:?}"
    );
    // Dice rises with clicks 1 -> 5, and later clicks never spoil it. (10 > 5 held on the
    // AVX2 machines this was written on; on an AVX-512 one the network trained here levels
    // off after 5 clicks at about 0.942, where the missed brain left is slivers 3 voxels
    // deep, one voxel of the network's 3 mm grid: clicks there move Dice by under 0.001.)
    assert!(
        scores[1] < scores[5] && scores[10] >= scores[5] - 0.002,
        "Dice rises with clicks 1 -> 5 and holds to 10: {scores:?}"
    );
    assert!(scores[10] > scores[0] + 0.02, "{scores:?}");
    // A background click deep inside a false positive removes it there.
    let (at, depth, before, after, clicked) = removed.expect("a background click was needed");
    println!("background click at {at:?} (depth {depth}): false brain nearby {before} -> {after}");
    assert_eq!(clicked, 0.0, "the clicked voxel is background now");
    assert!(
        before > 1000 && after * 5 < before,
        "false brain nearby {before} -> {after}"
    );

    // Refused clicks: outside the image, malformed; DeepGrow without any click.
    for (task, bad) in [
        ("brain_deepedit", json!({"brain": [[0, 0, 100000]]})),
        ("brain_deepedit", json!({"background": [[1, 2]]})),
        (
            "brain_deepgrow",
            json!({"foreground": [], "background": []}),
        ),
    ] {
        let (status, body) = segment(&server, task, "robex", &bad, &out).expect_err("refused");
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("typed")["code"],
            "INVALID_INPUT"
        );
    }

    // DeepGrow refines a saved label: the reference with a block of brain cut out, saved
    // as `original`; one foreground click in the block, a 128-voxel region around it.
    let s = reference.shape().to_vec();
    let (centre, _) = deepest(
        &reference.iter().map(|v| *v > 0.0).collect::<Vec<_>>(),
        [s[0], s[1], s[2]],
    );
    let block = |i: &[usize]| (0..3).all(|a| i[a] + 12 > centre[a] && i[a] < centre[a] + 12);
    let mut previous = reference.mapv(|v| u8::from(v > 0.0));
    for (i, v) in previous.indexed_iter_mut() {
        if block(i.slice()) {
            *v = 0;
        }
    }
    let previous_file = ws.dir.path().join("previous.nii.gz");
    write_like(&reference_file, &previous_file, &previous);
    put_label(&server, "robex", "original", &previous_file);
    let (grown, params) = segment(
        &server,
        "brain_deepgrow",
        "robex",
        &json!({"foreground": [centre], "previous_label": "original"}),
        &out,
    )
    .expect("deepgrow");
    let roi: Vec<usize> = serde_json::from_value(params["roi"].clone()).expect("roi");
    assert_eq!(roi.len(), 6, "{params}");
    let inside = |i: &[usize]| (0..3).all(|a| roi[2 * a] <= i[a] && i[a] < roi[2 * a + 1]);
    for a in 0..3 {
        assert_eq!(roi[2 * a + 1] - roi[2 * a], 128.min(s[a]), "{roi:?}");
        assert!(inside(&centre), "{roi:?} holds the click");
    }
    let (mut kept, mut outside, mut cut, mut regrown) = (0usize, 0usize, 0usize, 0usize);
    for (i, v) in grown.indexed_iter() {
        let i = i.slice();
        if !inside(i) {
            outside += 1;
            kept += usize::from((*v > 0.0) == (previous[i] > 0));
        } else if block(i) && reference[i] > 0.0 {
            cut += 1;
            regrown += usize::from(*v > 0.0);
        }
    }
    println!("deepgrow: roi {roi:?}, {regrown} of {cut} cut-out brain voxels back");
    assert_eq!(kept, outside, "the saved label stays outside the region");
    // MONAI Label's `roi`: the client's box instead of one around the clicks.
    let asked = json!([20, 100, 30, 130, 40, 140]);
    let (_, params) = segment(
        &server,
        "brain_deepgrow",
        "robex",
        &json!({"foreground": [centre], "roi": asked}),
        &out,
    )
    .expect("deepgrow in a box");
    assert_eq!(params["roi"], asked);
    assert!(cut > 10_000 && regrown * 10 > cut * 9, "{regrown} of {cut}");
}

/// False brain voxels within 8 voxels of `at`.
fn false_brain_near(pred: &ArrayD<f32>, reference: &ArrayD<f32>, at: [usize; 3]) -> usize {
    pred.indexed_iter()
        .filter(|(i, v)| {
            let i = i.slice();
            **v > 0.0 && reference[i] == 0.0 && (0..3).all(|a| i[a].abs_diff(at[a]) <= 8)
        })
        .count()
}
