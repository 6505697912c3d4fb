//! The app object a plugin hands the host: MONAI Label's `MONAILabelApp` surface.
//!
//! Requests and results are JSON text so they can grow without an ABI change.

use super::{
    error::PluginResult,
    types::{InferOutput, TaskInfo},
};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RStr, RString, RVec},
};

/// The app trait object the host holds.
pub type AppBox = App_TO<'static, RBox<()>>;

// The trait is written once and expanded per ABI revision: revision 1.0 stops at
// `on_save_label`; each later minor appends defaulted methods. Only the frozen-revision
// test fixtures ever build the older expansion (feature `abi-1-0`).
macro_rules! declare_app_trait {
    ($($since_1_1:tt)*) => {
        /// An app: its tasks and MONAI Label's app-level operations.
        ///
        /// Implemented by the SDK's adapter around an [`crate::sdk::App`]; every method
        /// catches panics and returns them as `PLUGIN_PANIC` errors.
        #[sabi_trait]
        pub trait App: Send + Sync {
            /// App-level `/info/` fields as a JSON object (`description`, `labels`...).
            fn info(&self) -> PluginResult<RString>;

            /// Every task the app exposes.
            fn tasks(&self) -> RVec<TaskInfo>;

            /// Runs infer task `model` on a request (JSON object of MONAI Label params).
            fn infer(&self, model: RStr<'_>, request: RStr<'_>) -> PluginResult<InferOutput>;

            /// Runs batch inference; the result is a JSON object `{image_id: result}`.
            fn batch_infer(&self, request: RStr<'_>) -> PluginResult<RString>;

            /// Runs train task `trainer`; the result is the train stats JSON.
            fn train(&self, trainer: RStr<'_>, request: RStr<'_>) -> PluginResult<RString>;

            /// Runs strategy `strategy`; the result is `{"id": ...}` or `{}` when none is left.
            fn next_sample(&self, strategy: RStr<'_>, request: RStr<'_>) -> PluginResult<RString>;

            /// Runs scoring method `method`; the result is its JSON.
            fn scoring(&self, method: RStr<'_>, request: RStr<'_>) -> PluginResult<RString>;

            /// Called after a label was saved; the result JSON is merged into the response.
            #[sabi(last_prefix_field)]
            fn on_save_label(&self, image_id: RStr<'_>, label_id: RStr<'_>)
                -> PluginResult<RString>;

            $($since_1_1)*
        }
    };
}

#[cfg(feature = "abi-1-0")]
declare_app_trait! {}

#[cfg(not(feature = "abi-1-0"))]
declare_app_trait! {
    /// (1.1) Called once when the host retires this generation of the app (unload or
    /// hot swap), after its last in-flight request finished. Apps built against 1.0
    /// get this default.
    fn on_retire(&self) -> PluginResult<()> {
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "on_retire is not implemented"))
    }
}
