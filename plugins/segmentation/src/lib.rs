//! The `segmentation` app: tissue classes of a volume by k-means on intensities (as ITK's
//! KmeansTest segments a T1), weighted-random sampling, and a trainer that fits the class
//! means to the annotators' final labels.
//!
//! With a TorchScript UNet in its bundle (`models/unet.pt`, or a published
//! `models/pretrained_unet.pt` overridden by it) it also offers `segmentation_unet`,
//! run by sliding-window inference on the shared executor, and trained there on the final
//! labels by `POST /train/segmentation_unet`.

mod kmeans;
mod train;
mod unet;

use labelhost_plugin_api::{
    export_app,
    sdk::{json, scoring, strategies, App, Host, Result, Tasks},
};

/// The app.
pub struct SegmentationApp {
    host: Host,
    classes: usize,
    unet: Option<std::path::PathBuf>,
    trained: train::Trained,
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
        if !(2..=255).contains(&classes) {
            return Err(labelhost_plugin_api::sdk::Error::invalid_input(
                "segmentation_classes must be between 2 and 255",
            ));
        }
        let unet = host.model_path(&["models/pretrained_unet.pt", "models/unet.pt"]);
        Ok(SegmentationApp {
            host: host.clone(),
            classes,
            unet,
            trained: Default::default(),
        })
    }

    fn tasks(&self) -> Tasks {
        let tasks = match &self.unet {
            // The stand-in UNet has 3 classes besides background.
            Some(model) => Tasks::new()
                .pipeline(
                    unet::NAME,
                    unet::UNet {
                        host: self.host.clone(),
                        model: model.clone(),
                        classes: 3,
                    },
                )
                .basic_train(
                    unet::NAME,
                    unet::UNetTrainer {
                        network: model.clone(),
                        classes: 3,
                    },
                ),
            None => Tasks::new(),
        };
        tasks
            .infer(
                "segmentation_kmeans",
                kmeans::KMeans {
                    classes: self.classes,
                    trained: self.trained.clone(),
                },
            )
            .train(
                "segmentation_kmeans",
                train::ClassMeans {
                    classes: self.classes,
                    trained: self.trained.clone(),
                },
            )
            .scoring(
                "segmentation_dice",
                scoring::Dice {
                    labels: json!({"class_1": 1, "class_2": 2, "class_3": 3})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
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
