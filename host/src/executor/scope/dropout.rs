//! `model_op(.., "mc_dropout", {"network"})`: a handle on the model's weights in a twin
//! network with dropout, in training mode (Monte-Carlo dropout; `executor/dropout.rs`).

use super::super::Precision;
use super::{err, ExecutorScope, LoadedModel, Res};
use labelhost_plugin_api::abi::{ErrorCode, ModelId};
use serde_json::Value;

impl ExecutorScope {
    /// Answers `{"model": handle}`; the model must be a loaded fp32 one.
    pub(super) fn with_dropout(&self, id: ModelId, args: &Value) -> Res<Value> {
        let (m, device) = self.loaded_for("mc_dropout", id)?;
        if m.precision != Precision::Fp32 {
            return Err(err(
                ErrorCode::INVALID_INPUT,
                "mc_dropout copies fp32 weights; ask for it before a reduced precision",
            ));
        }
        let network = args["network"].as_str().ok_or_else(|| {
            err(
                ErrorCode::INVALID_INPUT,
                "mc_dropout needs 'network', the TorchScript file of the model with dropout",
            )
        })?;
        let twin = self
            .exec
            .with_dropout(std::path::Path::new(network), &m.module, &m.path, device)
            .map_err(|e| {
                let missing = e.starts_with("dropout network") || e.starts_with("cannot load");
                let code = if missing {
                    ErrorCode::MODEL_IMPORT_ERROR
                } else {
                    ErrorCode::INVALID_INPUT
                };
                err(code, e)
            })?;
        let id = self.insert_model(LoadedModel {
            module: twin,
            device: m.device,
            path: m.path,
            precision: Precision::Fp32,
        })?;
        Ok(serde_json::json!({ "model": id.0 }))
    }
}
