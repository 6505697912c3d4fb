//! Chained tasks, as MONAI Label's pipelines chain them: the first task's label becomes the
//! next task's `label` input (the request key MONAI Label uses for label inputs such as
//! scribbles), on the same image; the answer is the last task's, with every step's
//! latencies under `chain`.

use crate::sdk::{
    error::{Error, Result},
    host::Host,
    tasks::{InferResult, InferTask, InferTaskInfo, Request},
};
use serde_json::json;

/// Runs `steps` in order, each fed the previous one's label.
pub struct Chain {
    /// What `/info/` shows for the chain.
    pub info: InferTaskInfo,
    /// The tasks, first to last.
    pub steps: Vec<Box<dyn InferTask>>,
}

impl InferTask for Chain {
    fn info(&self) -> InferTaskInfo {
        self.info.clone()
    }

    fn infer(&self, host: &Host, request: &Request) -> Result<InferResult> {
        let mut request = request.clone();
        let mut chain = Vec::new();
        let mut fed: Option<std::path::PathBuf> = None;
        let mut last: Option<InferResult> = None;
        for (i, step) in self.steps.iter().enumerate() {
            if let Some(previous) = last.take() {
                let Some(label) = previous.label else {
                    remove(&fed);
                    return Err(Error::app(format!("chain step {i} got no label")));
                };
                request.insert("label".into(), json!(label));
                // Only files the chain itself made are removed, never a user's upload.
                if let Some(old) = fed.replace(label) {
                    let _ = std::fs::remove_file(old);
                }
            }
            let result = step.infer(host, &request);
            chain.push(
                result
                    .as_ref()
                    .ok()
                    .and_then(|r| r.params.get("latencies").cloned()),
            );
            last = Some(result.inspect_err(|_| remove(&fed))?);
        }
        remove(&fed);
        let mut result = last.ok_or_else(|| Error::app("an empty chain"))?;
        result.params.insert("chain".into(), json!(chain));
        Ok(result)
    }
}

fn remove(path: &Option<std::path::PathBuf>) {
    if let Some(p) = path {
        let _ = std::fs::remove_file(p);
    }
}
