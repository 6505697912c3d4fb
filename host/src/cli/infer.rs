//! `labelhost infer`: one infer task on one image file, without a server: the plugins
//! folder's bundles are loaded as `serve` loads them, the task runs on the host's executor
//! with the request `POST /infer` would send, and the label is written next to you.

use super::progress;
use crate::{
    config::{parse_conf, InferArgs},
    local,
    registry::Registry,
    runtime::RuntimeDir,
    Error, Result,
};
use labelhost_plugin_api::abi::TaskKind;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Runs the inference `args` describe; prints the result JSON, writes the label.
pub fn run(args: &InferArgs) -> Result<()> {
    let image = std::path::absolute(&args.image)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", args.image.display())))?;
    if !image.is_file() {
        return Err(Error::BadRequest(format!(
            "{} is not a file",
            image.display()
        )));
    }
    if !args.plugins.is_dir() {
        return Err(Error::BadRequest(format!(
            "--plugins {} is not a folder",
            args.plugins.display()
        )));
    }
    let mut params = parse_params(&args.params)?;
    if let Some(device) = &args.device {
        params.insert("device".into(), Value::from(device.as_str()));
    }
    let conf = parse_conf(&args.conf)?;

    let spinner = progress::spinner(format!("loading the apps of {}", args.plugins.display()));
    let runtime = RuntimeDir::open(None)?;
    let studies = match &args.studies {
        Some(dir) => dir.clone(),
        None => runtime.path().join("studies"),
    };
    let shared = local::shared(&studies, conf)?;
    if let Some(device) = &args.device {
        shared.executor.device(device).map_err(Error::BadRequest)?;
    }
    let registry = Registry::new(&args.plugins, runtime.path(), shared);
    let skipped = registry.load_all();
    for (bundle, e) in &skipped {
        spinner.println(format!("labelhost: bundle {bundle} skipped: {e}"));
    }
    let snapshot = registry.snapshot();
    let Some(generation) = snapshot.find(TaskKind::INFER, &args.model) else {
        let known: Vec<String> = snapshot
            .apps
            .values()
            .flat_map(|g| g.tasks.iter())
            .filter(|t| t.kind == TaskKind::INFER)
            .map(|t| t.name.clone())
            .collect();
        return Err(Error::NotFound(format!(
            "no app in {} has infer task '{}' (there are: {})",
            args.plugins.display(),
            args.model,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    spinner.set_message(format!(
        "{} ({} {}) on {}",
        args.model,
        generation.name,
        generation.version,
        image.display()
    ));
    let out = local::infer(&generation.app, &args.model, &image, params)?;
    let written = match &out.label {
        Some(label) => {
            let label = generation.own_file(label)?;
            let dest = match &args.out {
                Some(p) => p.clone(),
                None => default_out(&image, &args.model, &label),
            };
            std::fs::copy(&label, &dest)
                .map_err(|e| Error::Internal(format!("{}: {e}", dest.display())))?;
            let _ = std::fs::remove_file(&label);
            Some(dest)
        }
        None => None,
    };
    spinner.finish_and_clear();
    let text = serde_json::to_string_pretty(&out.params).unwrap_or_default();
    println!("{text}");
    match written {
        Some(dest) => eprintln!("label written to {}", dest.display()),
        None => eprintln!("the task wrote no label"),
    }
    Ok(())
}

/// `<image name>_<model><label's extension>` in the current folder.
fn default_out(image: &Path, model: &str, label: &Path) -> PathBuf {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (image, label) = (name(image), name(label));
    let stem = crate::datastore::ids::split_name(&image).map_or(image, |(id, _)| id);
    let ext = crate::datastore::ids::split_name(&label).map_or_else(String::new, |(_, e)| e);
    PathBuf::from(format!("{stem}_{model}{ext}"))
}

/// `--param KEY=VALUE` flags as a request object: VALUE as JSON when it reads as JSON
/// (`3`, `true`, `[1,2]`, `"x"`), else as text.
fn parse_params(flags: &[String]) -> Result<Map<String, Value>> {
    let mut params = Map::new();
    for kv in flags {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| Error::BadRequest(format!("--param {kv}: expected KEY=VALUE")))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
        params.insert(k.trim().to_owned(), value);
    }
    Ok(params)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_are_json_where_they_read_as_json_else_text() {
        let p = parse_params(&[
            "a=3".into(),
            "b=true".into(),
            "c=x y".into(),
            "d=[1,2]".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"a": 3, "b": true, "c": "x y", "d": [1, 2]})
        );
        let e = parse_params(&["nokey".into()]).unwrap_err().to_string();
        assert!(e.contains("--param nokey: expected KEY=VALUE"), "{e}");
        assert!(parse_params(&["=1".into()]).is_err());
    }

    #[test]
    fn the_default_label_name_is_the_image_s_with_the_model_and_the_label_s_extension() {
        let out = default_out(
            Path::new("/data/ch2.nii.gz"),
            "brain_deepbet",
            Path::new("/w/result-1.nrrd"),
        );
        assert_eq!(out, PathBuf::from("ch2_brain_deepbet.nrrd"));
    }
}
