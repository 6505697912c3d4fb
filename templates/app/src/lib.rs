//! {{project-name}}: a labelhost app. Replace its tasks with your own; each shows the part
//! of the SDK it stands for:
//! - infer `{{crate_name}}_threshold`: voxels above a fraction of the image's maximum
//!   (read an image, write a label on its grid);
//! - train `{{crate_name}}_threshold`: fits that fraction to the annotators' `final`
//!   labels and keeps it in the app's model folder (read the datastore, report progress,
//!   stop when asked, publish what was learnt);
//! - strategy `{{crate_name}}_first`: the first unlabelled image (MONAI Label's `first`);
//! - scoring `{{crate_name}}_dice`: Dice between each image's `original` and `final` label.
//!
//! A task that runs a TorchScript model asks the host's executor (`host.executor()`):
//! see the plugin author's guide (plugin-api/GUIDE.md in labelhost).

use labelhost_plugin_api::{
    export_app,
    sdk::{
        image, input_image, json, pipeline, scoring, strategies, App, Error, ErrorCode, Host,
        InferResult, InferTask, InferTaskInfo, InferType, Map, Request, Result, Tasks,
        TrainTask, Value,
    },
};
use std::path::PathBuf;

/// The task names (one infer and one train task may share a name, as in MONAI Label).
const THRESHOLD: &str = "{{crate_name}}_threshold";

/// The app: built once per loaded generation, with the host's services.
pub struct MyApp {
    /// The fraction used until a training run has fitted one (assets/settings.json).
    default_fraction: f32,
    /// Where training keeps the fitted fraction (survives reloads and restarts).
    fitted: PathBuf,
}

impl App for MyApp {
    const NAME: &'static str = "{{project-name}}";
    const LABELS: &'static [&'static str] = &["foreground"];

    fn new(host: &Host) -> Result<Self> {
        // Assets ship in the bundle next to the library.
        let settings: Value = serde_json::from_str(&std::fs::read_to_string(
            host.asset("assets/settings.json")?,
        )?)?;
        let default_fraction = settings["threshold"].as_f64().unwrap_or(0.5) as f32;
        let fitted = host.model_dir().join("threshold.json");
        Ok(MyApp { default_fraction, fitted })
    }

    fn tasks(&self) -> Tasks {
        let threshold = Threshold {
            default_fraction: self.default_fraction,
            fitted: self.fitted.clone(),
        };
        Tasks::new()
            .infer(THRESHOLD, threshold)
            .train(THRESHOLD, FitThreshold { fitted: self.fitted.clone() })
            .strategy("{{crate_name}}_first", strategies::First)
            .scoring(
                "{{crate_name}}_dice",
                scoring::Dice {
                    labels: json!({"foreground": 1}).as_object().cloned().unwrap_or_default(),
                },
            )
    }
}

/// Marks voxels above a fraction of the image's maximum.
struct Threshold {
    default_fraction: f32,
    fitted: PathBuf,
}

impl InferTask for Threshold {
    fn info(&self) -> InferTaskInfo {
        InferTaskInfo {
            infer_type: InferType::SEGMENTATION,
            labels: json!({"foreground": 1}),
            dimension: 3,
            description: "Voxels above a fraction of the maximum".into(),
            config: Map::new(),
        }
    }

    fn infer(&self, host: &Host, request: &Request) -> Result<InferResult> {
        let (fraction, trained) = match fitted_fraction(&self.fitted) {
            Some(f) => (f, true),
            None => (self.default_fraction, false),
        };
        let volume = image::read(input_image(request)?)?;
        let max = volume.data.iter().copied().fold(f32::MIN, f32::max);
        let label = volume.data.mapv(|v| u8::from(v > fraction * max));
        let out = pipeline::write_label_for(host, request, &volume, &label)?;
        let mut params = Map::new();
        params.insert("threshold".into(), json!(fraction * max));
        params.insert("fraction".into(), json!(fraction));
        params.insert("trained".into(), json!(trained));
        Ok(InferResult { label: Some(out), params })
    }
}

/// The fraction a training run kept, if any.
fn fitted_fraction(path: &std::path::Path) -> Option<f32> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["fraction"].as_f64().map(|f| f as f32)
}

/// Chooses the fraction (0.05 to 0.95) whose labels best match the `final` ones.
struct FitThreshold {
    fitted: PathBuf,
}

impl TrainTask for FitThreshold {
    fn description(&self) -> String {
        "Fits the threshold fraction to the final labels (mean Dice)".into()
    }

    fn train(&self, host: &Host, request: &Request) -> Result<Value> {
        let job = request.get("_job").and_then(Value::as_str);
        let store = host.datastore();
        let labelled = store.labeled_images();
        if labelled.is_empty() {
            return Err(Error::new(ErrorCode::APP_TRAIN_FAILED, "no image has a final label"));
        }
        let fractions: Vec<f32> = (1..20).map(|i| i as f32 * 0.05).collect();
        let mut dice_sums = vec![0.0f64; fractions.len()];
        for (n, id) in labelled.iter().enumerate() {
            let img = image::read(&store.image_uri(id)?)?;
            let label = image::read(&store.label_uri(id, "final")?)?;
            if img.data.shape() != label.data.shape() {
                return Err(Error::invalid_input(format!("{id}: label and image grids differ")));
            }
            let max = img.data.iter().copied().fold(f32::MIN, f32::max);
            for (f, sum) in fractions.iter().zip(dice_sums.iter_mut()) {
                *sum += dice(img.data.iter().map(|&v| v > f * max), label.data.iter().map(|&l| l > 0.0));
            }
            let progress = json!({"epoch": 1, "total_epochs": 1, "images": n + 1, "of": labelled.len()});
            if !host.job_progress(job, &progress) {
                return Err(Error::new(ErrorCode::APP_TRAIN_FAILED, "stopped"));
            }
        }
        let (best, sum) = dice_sums
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, &s)| if s > b.1 { (i, s) } else { b });
        let mean_dice = sum / labelled.len() as f64;
        let fitted = json!({"fraction": fractions[best], "dice": mean_dice});
        std::fs::write(&self.fitted, fitted.to_string())?;
        Ok(json!({
            "epoch": 1, "total_epochs": 1, "images": labelled.len(),
            "fraction": fractions[best], "best_metric": mean_dice,
        }))
    }
}

/// Dice between two masks given voxel by voxel (1 when both are empty).
fn dice(a: impl Iterator<Item = bool>, b: impl Iterator<Item = bool>) -> f64 {
    let (mut both, mut total) = (0u64, 0u64);
    for (x, y) in a.zip(b) {
        both += u64::from(x && y);
        total += u64::from(x) + u64::from(y);
    }
    if total == 0 { 1.0 } else { 2.0 * both as f64 / total as f64 }
}

export_app!(MyApp);
