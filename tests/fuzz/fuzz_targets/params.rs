//! Request params as they arrive (a JSON body or `params` field) through every reader of
//! them: the host's object and flag readers, the train request check, the SDK's
//! sliding-window, click and train-request parsers. Properties: nothing panics, and what a
//! reader accepts is inside the bounds it promises.
#![no_main]

use labelhost_plugin_api::sdk::{
    pipeline::{sliding_window_params, Clicks},
    train::TrainRequest,
    Map,
};
use labelhost_wire::params::{flag, json_object, text_param};
use libfuzzer_sys::fuzz_target;

/// The image the clicks are read against.
const SHAPE: [usize; 3] = [16, 12, 8];

fuzz_target!(|data: &[u8]| {
    let Ok(params) = json_object(data) else {
        return;
    };
    let _ = flag(&params, "save_label", true);
    let _ = text_param(&params, "label_tag", "original");
    let _ = labelhost_wire::train::validate(&params);
    let _ = TrainRequest::parse(&Map::new(), &params);

    if let Ok(sw) = sliding_window_params(&params, [32, 32, 16]) {
        let batch = sw["sw_batch_size"].as_u64().expect("a batch size");
        assert!((1..=64).contains(&batch), "sw_batch_size {batch}");
        let overlap = sw["overlap"].as_f64().expect("an overlap");
        assert!((0.0..1.0).contains(&overlap), "overlap {overlap}");
    }
    for labels in [&["brain", "background"][..], &["brain"][..], &[][..]] {
        if let Ok(clicks) = Clicks::from_request(&params, labels, SHAPE) {
            assert_eq!(clicks.points.len(), labels.len());
            for p in clicks.points.iter().flatten() {
                for axis in 0..3 {
                    assert!(p[axis] >= 0.0 && p[axis] < SHAPE[axis] as f64, "{p:?}");
                }
            }
        }
    }
});
