//! The `brain` app: a foreground (head) mask of an MRI volume by Otsu thresholding,
//! voxel statistics and Dice of saved labels, and first/last/random sampling.
//!
//! With deepbet's pretrained models in its bundle (`models/bbox_model.pt`, `models/model.pt`)
//! it also offers `brain_extraction`, and a trainer of the same name that fine-tunes it. With an untrained MONAI UNet in its bundle
//! (`models/brain_unet.pt`) it offers `brain_unet`, which labelhost trains on the
//! annotators' final masks and then serves. Settings ship in the bundle too (`assets/otsu.json`),
//! so a new bundle can change them without a new build.

mod deepbet;
mod finetune;
mod otsu;
mod sum;
mod unet;

use labelhost_plugin_api::{
    export_app,
    sdk::{json, scoring, strategies, App, Host, Result, Tasks},
};

/// The app.
pub struct BrainApp {
    host: Host,
    bins: usize,
    deepbet: Option<(std::path::PathBuf, std::path::PathBuf)>,
    unet: Option<std::path::PathBuf>,
}

impl App for BrainApp {
    const NAME: &'static str = "brain";
    const LABELS: &'static [&'static str] = &["brain"];

    fn new(host: &Host) -> Result<Self> {
        let text = std::fs::read_to_string(host.asset("assets/otsu.json")?)?;
        let conf: serde_json::Value = serde_json::from_str(&text)?;
        let bins = conf["bins"].as_u64().unwrap_or(256).clamp(2, 65536) as usize;
        // The deepbet models ship in the bundle; a bundle without them offers no
        // brain_extraction (as MONAI Label hides models whose weights are missing).
        let deepbet = host
            .asset("models/bbox_model.pt")
            .ok()
            .zip(host.asset("models/model.pt").ok());
        let unet = host.asset("models/brain_unet.pt").ok();
        Ok(BrainApp {
            host: host.clone(),
            bins,
            deepbet,
            unet,
        })
    }

    fn tasks(&self) -> Tasks {
        let tasks = match &self.deepbet {
            Some((bbox_model, model)) => Tasks::new()
                .infer(
                    deepbet::NAME,
                    deepbet::DeepBet {
                        host: self.host.clone(),
                        bbox_model: bbox_model.clone(),
                        model: model.clone(),
                    },
                )
                .basic_train(
                    deepbet::NAME,
                    finetune::DeepBetFineTune {
                        model: model.clone(),
                    },
                ),
            None => Tasks::new(),
        };
        let tasks = match &self.unet {
            Some(network) => tasks
                .pipeline(
                    unet::NAME,
                    unet::BrainUNet {
                        host: self.host.clone(),
                    },
                )
                .basic_train(
                    unet::NAME,
                    unet::BrainUNetTrainer {
                        network: network.clone(),
                    },
                ),
            None => tasks,
        };
        tasks
            .infer("brain_otsu", otsu::OtsuMask { bins: self.bins })
            .strategy(
                "brain_random",
                strategies::Random {
                    name: "brain_random".into(),
                },
            )
            .strategy("first", strategies::First)
            .strategy("last", strategies::Last)
            .scoring("sum", sum::Sum)
            .scoring(
                "dice",
                scoring::Dice {
                    labels: json!({"brain": 1}).as_object().cloned().unwrap_or_default(),
                },
            )
    }
}

export_app!(BrainApp);
