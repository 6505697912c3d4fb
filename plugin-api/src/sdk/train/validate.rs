//! Validation: each case by sliding-window inference with the live weights, then MONAI's
//! `DiceMetric` per label on the device (argmax of the output against the label), means
//! over the cases that hold each label. A click network gets one click per label.

use super::{dataset::CaseStore, ClickSimulation};
use crate::sdk::{
    error::{Error, Result},
    host::{Executor, TrainableModel},
    DType,
};
use serde_json::{json, Map, Value};

/// Validates every case of `store`; `(mean Dice, {"val_dice_<label>": ...})`.
pub(super) fn validate(
    exec: &Executor,
    model: &TrainableModel,
    store: &CaseStore,
    labels: &[(String, u8)],
    (inferer, clicks): (&Value, Option<&ClickSimulation>),
    device: &str,
) -> Result<(f64, Map<String, Value>)> {
    let ids: Vec<i64> = labels.iter().map(|(_, v)| i64::from(*v)).collect();
    // Per label: the sum and count of the cases whose label holds it (MONAI's
    // ignore_empty: a case without the label gives NaN and is left out).
    let mut sums = vec![(0f64, 0u32); labels.len()];
    for i in 0..store.len() {
        let case = store.get(i)?;
        let [d, h, w] = case.shape.map(|s| s as i64);
        let x = match clicks {
            Some(sim) => {
                let c = 1 + sim.channels.len() as i64;
                exec.tensor_f32(&[1, c, d, h, w], &sim.validation_input(&case), device)?
            }
            None => exec.tensor_f32(&[1, 1, d, h, w], &case.image, device)?,
        };
        let y = exec.tensor(DType::U8, &[d, h, w], case.label.clone(), device)?;
        let logits = exec.sliding_window(model.model(), &x, inferer)?;
        let first = exec.op1("select", &logits, &json!({"dim": 0, "index": 0}))?;
        let args = json!({"labels": ids, "argmax": true});
        let dice = exec.op("dice", &[&first, &y], &args)?;
        let dice = dice
            .first()
            .ok_or_else(|| Error::app("dice gave no output"))?
            .to_data()?
            .to_f32()?;
        for (s, v) in sums.iter_mut().zip(dice) {
            if v.is_finite() {
                *s = (s.0 + f64::from(v), s.1 + 1);
            }
        }
    }
    let mut per = Map::new();
    for ((name, _), (sum, n)) in labels.iter().zip(&sums) {
        let v = if *n > 0 {
            sum / f64::from(*n)
        } else {
            f64::NAN
        };
        per.insert(format!("val_dice_{name}"), json!(v));
    }
    let (sum, n) = sums.iter().fold((0.0, 0), |a, s| (a.0 + s.0, a.1 + s.1));
    let mean = if n > 0 { sum / f64::from(n) } else { f64::NAN };
    Ok((mean, per))
}
