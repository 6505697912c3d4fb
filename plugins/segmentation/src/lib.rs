//! The `segmentation` app: tissue classes of a volume by k-means on intensities (as ITK's
//! KmeansTest segments a T1), plus weighted-random sampling.
//!
//! The TorchScript UNet on the shared executor joins this app later.

mod kmeans;

use labelhost_plugin_api::{
    export_app,
    sdk::{strategies, App, Host, Result, Tasks},
};

/// The app.
pub struct SegmentationApp {
    classes: usize,
}

impl App for SegmentationApp {
    const NAME: &'static str = "segmentation";
    const LABELS: &'static [&'static str] = &["class_1", "class_2", "class_3"];

    fn new(host: &Host) -> Result<Self> {
        let classes = match host.conf("segmentation_classes") {
            Some(v) => v.parse().map_err(|_| {
                labelhost_plugin_api::sdk::Error::invalid_input(format!("segmentation_classes={v}"))
            })?,
            None => 3,
        };
        Ok(SegmentationApp { classes })
    }

    fn tasks(&self) -> Tasks {
        Tasks::new()
            .infer(
                "segmentation_kmeans",
                kmeans::KMeans {
                    classes: self.classes,
                },
            )
            .strategy(
                "random",
                strategies::Random {
                    name: "random".into(),
                },
            )
    }
}

export_app!(SegmentationApp);
