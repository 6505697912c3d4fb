//! The `brain` app: a foreground (head) mask of an MRI volume by Otsu thresholding,
//! voxel statistics and Dice of saved labels, and first/last/random sampling.
//!
//! With deepbet's pretrained models in its bundle (`models/bbox_model.pt`, `models/model.pt`)
//! it also offers `brain_extraction`, and a trainer of the same name that fine-tunes it. With an untrained MONAI UNet in its bundle
//! (`models/brain_unet.pt`) it offers `brain_unet`, which labelhost trains on the
//! annotators' final masks and then serves, and its uncertainty for active learning
//! (`brain_unet_tta`; `brain_unet_epistemic` with `models/brain_unet_dropout.pt`). With the
//! click network (`models/brain_deepedit.pt`) it offers `brain_deepedit` and `brain_deepgrow`,
//! trained by `POST /train/brain_deepedit`. Settings ship in the bundle too (`assets/otsu.json`),
//! so a new bundle can change them without a new build.

mod clicks;
mod deepbet;
mod finetune;
mod otsu;
mod scribbles;
mod sum;
mod unet;

use std::sync::Arc;

use labelhost_plugin_api::{
    export_app,
    sdk::{
        json,
        pipeline::Pipeline,
        scoring, strategies,
        uncertainty::{Method, Uncertainty},
        App, Host, Result, Tasks,
    },
};

/// The app.
pub struct BrainApp {
    host: Host,
    bins: usize,
    deepbet: Option<(std::path::PathBuf, std::path::PathBuf)>,
    unet: Option<std::path::PathBuf>,
    unet_dropout: Option<std::path::PathBuf>,
    clicks: Option<std::path::PathBuf>,
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
        let unet_dropout = host.asset("models/brain_unet_dropout.pt").ok();
        let clicks = host.asset("models/brain_deepedit.pt").ok();
        Ok(BrainApp {
            host: host.clone(),
            bins,
            deepbet,
            unet,
            unet_dropout,
            clicks,
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
        let tasks = match &self.unet {
            Some(_) => self.uncertainty(tasks),
            None => tasks,
        };
        let tasks = match &self.clicks {
            Some(network) => self.clicks(tasks, network),
            None => tasks,
        };
        tasks
            .infer("brain_otsu", otsu::OtsuMask { bins: self.bins })
            .infer("brain_scribbles", scribbles::Scribbles)
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

impl BrainApp {
    /// The click tasks and their trainer (`models/brain_deepedit.pt` in the bundle).
    fn clicks(&self, tasks: Tasks, network: &std::path::Path) -> Tasks {
        let task = |deepgrow| clicks::ClickTask {
            host: self.host.clone(),
            deepgrow,
        };
        tasks
            .pipeline(clicks::NAME, task(false))
            .pipeline(clicks::DEEPGROW, task(true))
            .basic_train(
                clicks::NAME,
                clicks::ClickTrainer {
                    unet: unet::BrainUNetTrainer {
                        network: network.to_path_buf(),
                    },
                },
            )
    }

    /// brain_unet's uncertainty, each a scoring method and a strategy of one name:
    /// `brain_unet_tta` (8 augmented passes) and, with the dropout twin in the bundle
    /// (`models/brain_unet_dropout.pt`), `brain_unet_epistemic` (5 Monte-Carlo dropout passes,
    /// as MONAI Label's simulation size).
    fn uncertainty(&self, tasks: Tasks) -> Tasks {
        let pipeline: Arc<dyn Pipeline> = Arc::new(unet::BrainUNet {
            host: self.host.clone(),
        });
        let roi = [unet::PATCH as i64; 3];
        let tta = Uncertainty {
            name: "brain_unet_tta".into(),
            method: Method::Tta,
            passes: 8,
            pipeline: pipeline.clone(),
            roi,
        };
        let tasks = tasks
            .scoring(&tta.name.clone(), tta.clone())
            .strategy(&tta.name.clone(), tta);
        let Some(network) = &self.unet_dropout else {
            return tasks;
        };
        let epistemic = Uncertainty {
            name: "brain_unet_epistemic".into(),
            method: Method::Epistemic {
                network: network.clone(),
            },
            passes: 5,
            pipeline,
            roi,
        };
        tasks
            .scoring(&epistemic.name.clone(), epistemic.clone())
            .strategy(&epistemic.name.clone(), epistemic)
    }
}

export_app!(BrainApp);
