//! {{project-name}}: a labelhost app. It exposes one infer task, `{{crate_name}}_threshold`,
//! and MONAI Label's `first` strategy. Replace the task with your model.

use labelhost_plugin_api::{
    export_app,
    sdk::{
        pipeline,
        image, input_image, json, strategies, App, Host, InferResult, InferTask,
        InferTaskInfo, InferType, Map, Request, Result, Tasks, Value,
    },
};

/// The app: built once per loaded generation, with the host's services.
pub struct MyApp {
    threshold: f32,
}

impl App for MyApp {
    const NAME: &'static str = "{{project-name}}";
    const LABELS: &'static [&'static str] = &["foreground"];

    fn new(host: &Host) -> Result<Self> {
        // Assets ship in the bundle next to the library.
        let settings: Value = serde_json::from_str(&std::fs::read_to_string(
            host.asset("assets/settings.json")?,
        )?)?;
        let threshold = settings["threshold"].as_f64().unwrap_or(0.5) as f32;
        Ok(MyApp { threshold })
    }

    fn tasks(&self) -> Tasks {
        Tasks::new()
            .infer("{{crate_name}}_threshold", Threshold(self.threshold))
            .strategy("{{crate_name}}_first", strategies::First)
    }
}

/// Marks voxels above a fraction of the image's maximum.
struct Threshold(f32);

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
        let path = input_image(request)?;
        let volume = image::read(path)?;
        let max = volume.data.iter().copied().fold(f32::MIN, f32::max);
        let label = volume.data.mapv(|v| u8::from(v > self.0 * max));
        let out = pipeline::write_label_for(host, request, &volume, &label)?;
        let mut params = Map::new();
        params.insert("threshold".into(), json!(self.0 * max));
        Ok(InferResult { label: Some(out), params })
    }
}

export_app!(MyApp);
