//! Host services handed to every app at construction: the shared datastore, the shared
//! executor and the app's own context (bundle assets, work dir, configuration, logging).
//!
//! Implemented by the host; the plugin only holds the trait objects.

use super::{error::PluginResult, executor::ExecutorBox};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RStr, RString, RVec},
    StableAbi,
};

/// The datastore trait object plugins hold.
pub type DatastoreBox = Datastore_TO<'static, RBox<()>>;
/// The host-services trait object plugins hold.
pub type HostBox = Host_TO<'static, RBox<()>>;

/// The studies datastore shared by all apps: every method of MONAI Label's `Datastore`.
///
/// Info dicts travel as JSON objects; ids are validated by the host.
#[sabi_trait]
pub trait Datastore: Send + Sync {
    /// The dataset's name.
    fn name(&self) -> RString;
    /// Renames the dataset.
    fn set_name(&self, name: RStr<'_>) -> PluginResult<()>;
    /// The dataset's description.
    fn description(&self) -> RString;
    /// Sets the dataset's description.
    fn set_description(&self, description: RStr<'_>) -> PluginResult<()>;
    /// `[{"image": path, "label": path}]` for every image with a `final` label (JSON).
    fn datalist(&self) -> PluginResult<RString>;
    /// Every image id.
    fn list_images(&self) -> RVec<RString>;
    /// The raw bytes of an image file.
    fn get_image(&self, image_id: RStr<'_>) -> PluginResult<RVec<u8>>;
    /// The absolute path of an image file.
    fn get_image_uri(&self, image_id: RStr<'_>) -> PluginResult<RString>;
    /// An image's info dict (JSON object).
    fn get_image_info(&self, image_id: RStr<'_>) -> PluginResult<RString>;
    /// The raw bytes of a label file.
    fn get_label(&self, label_id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RVec<u8>>;
    /// The absolute path of a label file.
    fn get_label_uri(&self, label_id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RString>;
    /// A label's info dict (JSON object).
    fn get_label_info(&self, label_id: RStr<'_>, tag: RStr<'_>) -> PluginResult<RString>;
    /// The label id of an image for a tag, if there is one.
    fn get_label_by_image_id(&self, image_id: RStr<'_>, tag: RStr<'_>) -> ROption<RString>;
    /// `{tag: label_id}` for an image (JSON object).
    fn get_labels_by_image_id(&self, image_id: RStr<'_>) -> PluginResult<RString>;
    /// Images that have a `final` label.
    fn get_labeled_images(&self) -> RVec<RString>;
    /// Images without a `final` label.
    fn get_unlabeled_images(&self) -> RVec<RString>;
    /// Copies a file into the datastore as image `image_id`; returns the id.
    fn add_image(
        &self,
        image_id: RStr<'_>,
        file: RStr<'_>,
        info: RStr<'_>,
    ) -> PluginResult<RString>;
    /// Removes an image and its labels.
    fn remove_image(&self, image_id: RStr<'_>) -> PluginResult<()>;
    /// Copies a file into the datastore as the `tag` label of `image_id`; returns the label id.
    fn save_label(
        &self,
        image_id: RStr<'_>,
        file: RStr<'_>,
        tag: RStr<'_>,
        info: RStr<'_>,
    ) -> PluginResult<RString>;
    /// Removes one label.
    fn remove_label(&self, label_id: RStr<'_>, tag: RStr<'_>) -> PluginResult<()>;
    /// Removes every label of a tag.
    fn remove_label_by_tag(&self, tag: RStr<'_>) -> PluginResult<()>;
    /// Merges a JSON object into an image's info.
    fn update_image_info(&self, image_id: RStr<'_>, info: RStr<'_>) -> PluginResult<()>;
    /// Merges a JSON object into a label's info.
    fn update_label_info(
        &self,
        label_id: RStr<'_>,
        tag: RStr<'_>,
        info: RStr<'_>,
    ) -> PluginResult<()>;
    /// `{"total", "completed", "label_tags"}` (JSON object).
    fn status(&self) -> RString;
    /// Re-scans the studies folder.
    fn refresh(&self) -> PluginResult<()>;
    /// The whole index as `datastore_v2.json` holds it.
    fn json(&self) -> RString;
    /// Writes a zip of images, final labels and the index; returns its path.
    #[sabi(last_prefix_field)]
    fn get_dataset_archive(&self, limit_cases: u32) -> PluginResult<RString>;
}

/// How loud a plugin's log line is.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Errors.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Warnings.
    pub const WARN: LogLevel = LogLevel(2);
    /// Information.
    pub const INFO: LogLevel = LogLevel(3);
    /// Debugging detail.
    pub const DEBUG: LogLevel = LogLevel(4);
}

macro_rules! declare_host_trait {
    ($($since_1_1:tt)*) => {
        /// What the host offers one app generation.
        #[sabi_trait]
        pub trait Host: Send + Sync {
            /// The shared datastore.
            fn datastore(&self) -> DatastoreBox;
            /// The shared executor, scoped to this app generation (its handles are freed
            /// when the generation is retired).
            fn executor(&self) -> ExecutorBox;
            /// Absolute path of this generation's bundle folder (its model files, assets).
            fn bundle_dir(&self) -> RString;
            /// Absolute path of a writable folder for this app's results and caches.
            fn work_dir(&self) -> RString;
            /// A server configuration value (`--conf KEY=VALUE`).
            #[sabi(last_prefix_field)]
            fn conf(&self, key: RStr<'_>) -> ROption<RString>;

            $($since_1_1)*
        }
    };
}

#[cfg(feature = "abi-1-0")]
declare_host_trait! {}

#[cfg(all(feature = "abi-1-1", not(feature = "abi-1-0")))]
declare_host_trait! {
    /// (1.1) Writes a line to the server's log, inside the current request's span.
    fn log(&self, level: LogLevel, message: RStr<'_>) -> PluginResult<()> {
        let _ = (level, message);
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "this host does not take plugin logs"))
    }
}

#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
declare_host_trait! {
    /// (1.1) Writes a line to the server's log, inside the current request's span.
    fn log(&self, level: LogLevel, message: RStr<'_>) -> PluginResult<()> {
        let _ = (level, message);
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "this host does not take plugin logs"))
    }

    /// (1.2) Absolute path of this app's persistent model folder (trained weights,
    /// checkpoints, train stats), kept across restarts and hot swaps; `""` when the host
    /// has none.
    fn model_dir(&self) -> RString {
        RString::new()
    }

    /// (1.2) Reports a running job's progress (a JSON object, MONAI Label's train stats
    /// for training); answers `false` once the job was stopped and should end.
    fn job_progress(&self, job: RStr<'_>, progress: RStr<'_>) -> PluginResult<bool> {
        let _ = (job, progress);
        abi_stable::std_types::ROk(true)
    }
}
