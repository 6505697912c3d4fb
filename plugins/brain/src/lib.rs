//! The `brain` app: a foreground (head) mask of an MRI volume by Otsu thresholding,
//! voxel statistics of saved labels, and first/last sampling.
//!
//! Settings ship in the bundle (`assets/otsu.json`), so a new bundle can change them
//! without a new build. The deep-learning brain extraction joins this app later.

mod otsu;
mod sum;

use labelhost_plugin_api::{
    export_app,
    sdk::{strategies, App, Host, Result, Tasks},
};

/// The app.
pub struct BrainApp {
    bins: usize,
}

impl App for BrainApp {
    const NAME: &'static str = "brain";
    const LABELS: &'static [&'static str] = &["brain"];

    fn new(host: &Host) -> Result<Self> {
        let text = std::fs::read_to_string(host.asset("assets/otsu.json")?)?;
        let conf: serde_json::Value = serde_json::from_str(&text)?;
        let bins = conf["bins"].as_u64().unwrap_or(256).clamp(2, 65536) as usize;
        Ok(BrainApp { bins })
    }

    fn tasks(&self) -> Tasks {
        Tasks::new()
            .infer("brain_otsu", otsu::OtsuMask { bins: self.bins })
            .strategy("first", strategies::First)
            .strategy("last", strategies::Last)
            .scoring("sum", sum::Sum)
    }
}

export_app!(BrainApp);
