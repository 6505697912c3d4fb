//! Plain data crossing the boundary: the plugin manifest, task descriptions, infer output.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

/// What a plugin says about itself before it is constructed.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[cfg(not(feature = "abi-mismatch"))]
pub struct Manifest {
    /// The app's name: unique on a server, used in `/apps/{name}`.
    pub name: RString,
    /// The app's own version (semver).
    pub version: RString,
    /// The plugin-api version the plugin was compiled against (semver).
    pub plugin_api: RString,
    /// One line about the app.
    pub description: RString,
    /// The labels the app's models produce.
    pub labels: RVec<RString>,
}

/// The manifest as an edit that forgot to bump the version leaves it (test fixtures only,
/// feature `abi-mismatch`): two fields swapped, the version unchanged. A host must refuse
/// it on the layout, not read the fields in the wrong places.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
#[cfg(feature = "abi-mismatch")]
#[allow(missing_docs)]
pub struct Manifest {
    pub name: RString,
    pub plugin_api: RString,
    pub version: RString,
    pub description: RString,
    pub labels: RVec<RString>,
}

/// The kind of a task an app exposes.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TaskKind(pub u32);

impl TaskKind {
    /// An infer task (a "model" in `/info/`).
    pub const INFER: TaskKind = TaskKind(1);
    /// A train task (a "trainer").
    pub const TRAIN: TaskKind = TaskKind(2);
    /// An active-learning strategy.
    pub const STRATEGY: TaskKind = TaskKind(3);
    /// A scoring method.
    pub const SCORING: TaskKind = TaskKind(4);
}

/// MONAI Label's `InferType`, as an open newtype (unknown values show as `others`).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InferType(pub u32);

macro_rules! infer_types {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl InferType {
            $($(#[$doc])* pub const $name: InferType = InferType($value);)*

            /// The name MONAI Label's `/info/` uses (`"segmentation"`).
            pub fn as_str(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "others",
                }
            }
        }
    };
}

infer_types! {
    /// Segmentation of a whole image.
    SEGMENTATION = 1, "segmentation";
    /// Image classification.
    CLASSIFICATION = 2, "classification";
    /// Click-guided segmentation (Deepgrow).
    DEEPGROW = 3, "deepgrow";
    /// Click-guided editing of a segmentation (DeepEdit).
    DEEPEDIT = 4, "deepedit";
    /// Post-processing of a label (scribbles, graph cuts).
    POSTPROCS = 5, "postprocs";
    /// Anything else.
    OTHERS = 6, "others";
    /// Annotation helpers.
    ANNOTATION = 7, "annotation";
    /// Scribble-based refinement.
    SCRIBBLES = 8, "scribbles";
    /// Object detection.
    DETECTION = 9, "detection";
}

/// One task an app exposes.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct TaskInfo {
    /// Infer, train, strategy or scoring.
    pub kind: TaskKind,
    /// The task's name, unique across every app loaded on a server.
    pub name: RString,
    /// For infer tasks, the InferType; `OTHERS` for the other kinds.
    pub infer_type: InferType,
    /// The task's `/info/` entry as JSON (description, labels, dimension, config...).
    pub info_json: RString,
}

/// What an infer call produced.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct InferOutput {
    /// The result file the plugin wrote (in its work dir), if the task writes one.
    pub label_path: ROption<RString>,
    /// The result JSON (`label_names`, `latencies`, `centroids`, task extras).
    pub params_json: RString,
}
