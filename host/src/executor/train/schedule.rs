//! The optimiser (LibTorch's Adam, AdamW or SGD with momentum), the learning-rate
//! schedule (constant, MONAI Label's StepLR, cosine, poly) and fresh initialisation.

use super::config::{bad, name, number, Res};
use crate::executor::scope::torch;
use serde_json::{Map, Value};
use tch::{COptimizer, Tensor};

/// The learning rate after `step` steps.
#[derive(Debug, Clone)]
pub(super) enum Schedule {
    Constant,
    Step { size: u64, gamma: f64 },
    Cosine { total: u64 },
    Poly { total: u64, power: f64 },
}

impl Schedule {
    pub(super) fn parse(m: &Map<String, Value>) -> Res<Self> {
        let total = || -> Res<u64> {
            m.get("total_steps")
                .and_then(Value::as_u64)
                .filter(|t| *t > 0)
                .ok_or_else(|| bad("this lr_scheduler needs total_steps > 0"))
        };
        Ok(match name(m, "constant") {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                size: m
                    .get("step_size")
                    .and_then(Value::as_u64)
                    .filter(|s| *s > 0)
                    .unwrap_or(1000),
                gamma: number(m, "gamma", 0.1)?,
            },
            "cosine" => Schedule::Cosine { total: total()? },
            "poly" => Schedule::Poly {
                total: total()?,
                power: number(m, "power", 0.9)?,
            },
            other => {
                return Err(bad(format!(
                    "unknown lr_scheduler '{other}' (constant, step, cosine, poly)"
                )))
            }
        })
    }

    pub(super) fn lr(&self, base: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { size, gamma } => base * gamma.powf((step / size) as f64),
            Schedule::Cosine { total } => {
                let t = step.min(total) as f64 / total as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Poly { total, power } => {
                base * (1.0 - step.min(total) as f64 / total as f64).powf(power)
            }
        }
    }
}

pub(super) fn build_optimizer(m: &Map<String, Value>) -> Res<(COptimizer, f64)> {
    let lr = number(m, "lr", 1e-3)?;
    let wd = number(m, "weight_decay", 0.0)?;
    let eps = number(m, "eps", 1e-8)?;
    if lr <= 0.0 || wd < 0.0 {
        return Err(bad("optimizer: lr must be > 0 and weight_decay >= 0"));
    }
    let betas: Vec<f64> = m
        .get("betas")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_else(|| vec![0.9, 0.999]);
    let [b1, b2] = <[f64; 2]>::try_from(betas).map_err(|_| bad("optimizer: betas: [b1, b2]"))?;
    let opt = match name(m, "adam") {
        "adam" => COptimizer::adam(lr, b1, b2, wd, eps, false),
        "adamw" => COptimizer::adamw(lr, b1, b2, number(m, "weight_decay", 1e-2)?, eps, false),
        "sgd" => COptimizer::sgd(
            lr,
            number(m, "momentum", 0.9)?,
            0.0,
            wd,
            m.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
        ),
        other => {
            return Err(bad(format!(
                "unknown optimizer '{other}' (adam, adamw, sgd)"
            )))
        }
    };
    Ok((opt.map_err(torch)?, lr))
}

/// PyTorch's default initialisation, re-drawn: weights of rank >= 2 uniform in
/// ±1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), biases zero, single-value
/// parameters (PReLU) 0.25, other vectors (normalisation scales) one.
pub(super) fn fresh_init(params: &[(String, Tensor)], seed: u64) -> Res<()> {
    tch::manual_seed(seed as i64);
    tch::no_grad(|| -> Res<()> {
        for (name, p) in params {
            let size = p.size();
            let mut p = p.shallow_clone();
            if size.len() >= 2 {
                let fan_in: i64 = size[1] * size[2..].iter().product::<i64>();
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                let _ = p.f_uniform_(-bound, bound).map_err(torch)?;
            } else if name.ends_with("bias") {
                let _ = p.f_zero_().map_err(torch)?;
            } else if p.numel() == 1 {
                let _ = p.f_fill_(0.25).map_err(torch)?;
            } else {
                let _ = p.f_fill_(1.0).map_err(torch)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let step = Schedule::Step {
            size: 10,
            gamma: 0.5,
        };
        assert_eq!(step.lr(1.0, 9), 1.0);
        assert_eq!(step.lr(1.0, 10), 0.5);
        assert_eq!(step.lr(1.0, 25), 0.25);
        let cos = Schedule::Cosine { total: 100 };
        assert!((cos.lr(1.0, 50) - 0.5).abs() < 1e-12);
        assert!(cos.lr(1.0, 100).abs() < 1e-12);
        let poly = Schedule::Poly {
            total: 10,
            power: 1.0,
        };
        assert!((poly.lr(2.0, 5) - 1.0).abs() < 1e-12);
    }
}
