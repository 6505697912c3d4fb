//! MONAI's `DiceLoss`, `DiceCELoss` and `CrossEntropyLoss` on `[N, C, ...]` outputs and
//! integer labels: softmax (or probabilities as they are), one-hot labels, per-sample
//! per-channel soft Dice with MONAI's smoothing, mean over both.

use super::config::{bad, name, number, Res};
use crate::executor::scope::torch;
use serde_json::{Map, Value};
use tch::{Kind, Reduction, Tensor};

/// Which loss, with MONAI's defaults.
#[derive(Debug, Clone)]
pub(super) struct Loss {
    dice: f64,
    ce: f64,
    softmax: bool,
    include_background: bool,
    smooth_nr: f64,
    smooth_dr: f64,
}

impl Loss {
    pub(super) fn parse(m: &Map<String, Value>) -> Res<Self> {
        let (dice, ce) = match name(m, "dice_ce") {
            "dice_ce" => (number(m, "lambda_dice", 1.0)?, number(m, "lambda_ce", 1.0)?),
            "dice" => (1.0, 0.0),
            "ce" => (0.0, 1.0),
            other => return Err(bad(format!("unknown loss '{other}' (dice_ce, dice, ce)"))),
        };
        let softmax = match m.get("activation").and_then(Value::as_str) {
            None | Some("softmax") => true,
            Some("none") => false,
            Some(other) => return Err(bad(format!("unknown activation '{other}'"))),
        };
        Ok(Loss {
            dice,
            ce,
            softmax,
            include_background: m
                .get("include_background")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            smooth_nr: number(m, "smooth_nr", 1e-5)?,
            smooth_dr: number(m, "smooth_dr", 1e-5)?,
        })
    }

    /// `out` `[N, C, ...]` (logits, or probabilities with activation none), `target` integer
    /// labels `[N, 1, ...]` or `[N, ...]`.
    pub(super) fn compute(&self, out: &Tensor, target: &Tensor) -> Res<Tensor> {
        let shape = out.size();
        if shape.len() < 3 {
            return Err(bad("the network's output must be [N, C, spatial...]"));
        }
        let classes = shape[1];
        let mut labels = target.f_to_kind(Kind::Int64).map_err(torch)?;
        if labels.dim() == shape.len() {
            labels = labels.f_squeeze_dim(1).map_err(torch)?;
        }
        if labels.size()[..] != [&shape[..1], &shape[2..]].concat()[..] {
            return Err(bad(format!(
                "the label's shape {:?} does not match the output's {:?}",
                target.size(),
                shape
            )));
        }
        let max = labels
            .f_max()
            .and_then(|m| m.f_int64_value(&[]))
            .map_err(torch)?;
        let min = labels
            .f_min()
            .and_then(|m| m.f_int64_value(&[]))
            .map_err(torch)?;
        if min < 0 || max >= classes {
            return Err(bad(format!(
                "label values must be 0..{} for a network with {classes} output channels, got {min}..{max}",
                classes - 1
            )));
        }
        let mut total = Tensor::f_zeros([], (Kind::Float, out.device())).map_err(torch)?;
        let probs = if self.softmax {
            out.f_softmax(1, Kind::Float).map_err(torch)?
        } else {
            out.shallow_clone()
        };
        if self.dice > 0.0 {
            let total_dims = shape.len() as i64;
            let mut perm = vec![0, total_dims - 1];
            perm.extend(1..total_dims - 1);
            let onehot = labels
                .f_one_hot(classes)
                .and_then(|t| t.f_permute(perm.as_slice()))
                .and_then(|t| t.f_to_kind(Kind::Float))
                .map_err(torch)?;
            let (p, g) = if self.include_background || classes == 1 {
                (probs.shallow_clone(), onehot)
            } else {
                (
                    probs.f_narrow(1, 1, classes - 1).map_err(torch)?,
                    onehot.f_narrow(1, 1, classes - 1).map_err(torch)?,
                )
            };
            let dims: Vec<i64> = (2..total_dims).collect();
            let sum = |t: &Tensor| t.f_sum_dim_intlist(dims.as_slice(), false, Kind::Float);
            let inter = sum(&p.f_mul(&g).map_err(torch)?).map_err(torch)?;
            let denom = sum(&p).and_then(|a| a.f_add(&sum(&g)?)).map_err(torch)?;
            let dice = inter
                .f_mul_scalar(2.0)
                .and_then(|t| t.f_add_scalar(self.smooth_nr))
                .and_then(|t| t.f_div(&denom.f_add_scalar(self.smooth_dr)?))
                .and_then(|t| t.f_neg())
                .and_then(|t| t.f_add_scalar(1.0))
                .and_then(|t| t.f_mean(Kind::Float))
                .map_err(torch)?;
            total = total
                .f_add(&dice.f_mul_scalar(self.dice).map_err(torch)?)
                .map_err(torch)?;
        }
        if self.ce > 0.0 {
            let ce = if self.softmax {
                out.f_cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0)
            } else {
                probs
                    .f_clamp_min(1e-7)
                    .and_then(|p| p.f_log())
                    .and_then(|l| l.f_nll_loss_nd::<Tensor>(&labels, None, Reduction::Mean, -100))
            }
            .map_err(torch)?;
            total = total
                .f_add(&ce.f_mul_scalar(self.ce).map_err(torch)?)
                .map_err(torch)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use tch::Tensor;

    #[test]
    fn dice_ce_matches_monai_on_a_hand_computed_case() {
        // Two voxels, two classes; logits make softmax probabilities exact enough to check.
        let logits = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.0]).reshape([1, 2, 2, 1, 1]);
        let target = Tensor::from_slice(&[0i64, 1]).reshape([1, 1, 2, 1, 1]);
        let loss = Loss::parse(&Map::new()).expect("defaults");
        let v = loss
            .compute(&logits, &target)
            .expect("loss")
            .double_value(&[]);
        // p = 0.5 everywhere: per class I = 0.5, P + G = 2 → dice 0.5 each → 1 - 0.5 = 0.5;
        // cross entropy = ln 2.
        let want = 0.5 + std::f64::consts::LN_2;
        assert!((v - want).abs() < 1e-4, "{v} vs {want}");
        let bad_label = Tensor::from_slice(&[0i64, 2]).reshape([1, 1, 2, 1, 1]);
        let e = loss
            .compute(&logits, &bad_label)
            .expect_err("label 2 of 2 classes");
        assert!(e.message.as_str().contains("0..1"), "{}", e.message);
    }
}
