//! Model handles in a reduced precision: `model_op(.., "precision", ..)`, and the casts of
//! a reduced-precision model's inputs (to its type) and outputs (back to f32).

use super::super::precision::{self, Precision};
use super::{err, torch, ExecutorScope, Res};
use labelhost_plugin_api::abi::{ErrorCode, ModelId};
use serde_json::Value;
use tch::{Kind, Tensor};

impl ExecutorScope {
    /// `model_op(.., "precision", {"precision", "allowed"})`: a handle on the model in the
    /// precision `auto` or a name resolves to among the task's validated `allowed` ones
    /// and the device's native ones. Answers `{"model", "precision"}`.
    pub(super) fn with_precision(&self, id: ModelId, args: &Value) -> Res<Value> {
        let (m, device) = self.loaded_for("precision", id)?;
        let requested = args["precision"].as_str().unwrap_or("auto");
        let allowed: Vec<Precision> = args["allowed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(Precision::parse)
                    .collect()
            })
            .unwrap_or_default();
        let p = precision::resolve(requested, &allowed, &precision::native(device), device)
            .map_err(|e| err(ErrorCode::INVALID_INPUT, e))?;
        let new = if p == m.precision {
            id
        } else {
            self.load_as(m.path, device, p)?
        };
        Ok(serde_json::json!({"model": new.0, "precision": p.to_string()}))
    }

    /// A CPU handle on the model at `path` in `precision` whether or not the CPU runs it
    /// natively (tests check the casts on any CPU).
    #[cfg(test)]
    pub(in crate::executor) fn load_on_cpu_in(
        &self,
        path: &str,
        precision: Precision,
    ) -> Res<ModelId> {
        self.load_as(path.into(), tch::Device::Cpu, precision)
    }
}

/// A model input on the model's device (a plugin may upload it elsewhere) and in its
/// precision (floating tensors only).
pub(super) fn cast_in(t: &Tensor, precision: Precision, device: tch::Device) -> Res<Tensor> {
    let t = t.f_to_device(device).map_err(torch)?;
    if precision == Precision::Fp32 || !t.is_floating_point() {
        return Ok(t);
    }
    t.f_to_kind(precision.kind()).map_err(torch)
}

/// A model output back in f32 when it came out in a reduced precision.
pub(super) fn cast_out(t: Tensor) -> Res<Tensor> {
    match t.kind() {
        Kind::BFloat16 | Kind::Half => t.f_to_kind(Kind::Float).map_err(torch),
        _ => Ok(t),
    }
}
