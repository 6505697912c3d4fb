//! Monte-Carlo dropout: a model's weights in a twin network that has dropout layers,
//! kept in training mode so every pass drops other units (MONAI Label's epistemic scoring
//! loads the trained weights into its network built with dropout the same way). Cached per
//! (twin file, model file, device) and remade when either file changes.

use super::{cache::ModuleCache, device_name, modified, TorchExecutor};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};
use tch::{CModule, Device};

/// Twins by (network file, model file, device), stamped with both files' times.
pub(super) type Twins =
    ModuleCache<(PathBuf, PathBuf, String), (Option<SystemTime>, Option<SystemTime>)>;

/// Copies every parameter of `from` into the parameter of the same name in `to`; the two
/// must have the same names and shapes.
fn copy_weights(from: &CModule, to: &CModule) -> Result<(), String> {
    let torch = |e: tch::TchError| format!("libtorch: {e}");
    let source: HashMap<String, tch::Tensor> = from
        .named_parameters()
        .map_err(torch)?
        .into_iter()
        .collect();
    let target = to.named_parameters().map_err(torch)?;
    if target.len() != source.len() {
        return Err(format!(
            "the dropout network has {} parameters, the model {}",
            target.len(),
            source.len()
        ));
    }
    let _no_grad = tch::no_grad_guard();
    for (name, mut t) in target {
        let s = source
            .get(&name)
            .ok_or_else(|| format!("the model has no parameter '{name}'"))?;
        if s.size() != t.size() {
            return Err(format!(
                "parameter '{name}': {:?} in the model, {:?} in the dropout network",
                s.size(),
                t.size()
            ));
        }
        t.f_copy_(s).map_err(torch)?;
    }
    Ok(())
}

impl TorchExecutor {
    /// `network` (TorchScript: the model's architecture with dropout) on `device`, in
    /// training mode, carrying the weights of `model` (the fp32 module loaded from
    /// `model_path`). Only dropout should differ between training and evaluation mode in
    /// such a network: normalisation per instance or layer, not batch statistics.
    pub fn with_dropout(
        &self,
        network: &Path,
        model: &CModule,
        model_path: &Path,
        device: Device,
    ) -> Result<Arc<CModule>, String> {
        let key = (
            network.to_path_buf(),
            model_path.to_path_buf(),
            device_name(device),
        );
        let stamps = (modified(network), modified(model_path));
        if stamps.0.is_none() {
            return Err(format!(
                "dropout network {} does not exist",
                network.display()
            ));
        }
        let mut twins = self
            .twins
            .lock()
            .map_err(|_| "twin cache poisoned".to_owned())?;
        if let Some(m) = twins.get(&key, &stamps) {
            return Ok(m);
        }
        let mut twin = CModule::load_on_device(network, device)
            .map_err(|e| format!("cannot load TorchScript model {}: {e}", network.display()))?;
        copy_weights(model, &twin)?;
        twin.f_set_train()
            .map_err(|e| format!("{}: {e}", network.display()))?;
        let twin = Arc::new(twin);
        twins.put(key, stamps, &twin);
        Ok(twin)
    }
}
