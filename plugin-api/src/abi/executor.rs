//! The shared LibTorch executor as plugins see it: opaque model and tensor handles.
//!
//! Plugins never link libtorch; every tensor lives in the host. Handles belong to the
//! app generation that created them and are freed when it is retired.

use super::error::PluginResult;
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// The executor trait object plugins hold.
pub type ExecutorBox = Executor_TO<'static, RBox<()>>;

/// A loaded TorchScript model.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ModelId(pub u64);

/// A tensor held by the executor.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TensorId(pub u64);

/// An element type (open newtype).
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DType(pub u32);

impl DType {
    /// `u8`.
    pub const U8: DType = DType(1);
    /// `i16`.
    pub const I16: DType = DType(2);
    /// `i32`.
    pub const I32: DType = DType(3);
    /// `i64`.
    pub const I64: DType = DType(4);
    /// `f32`.
    pub const F32: DType = DType(5);
    /// `f64`.
    pub const F64: DType = DType(6);
    /// `f16`.
    pub const F16: DType = DType(7);
    /// `bf16` (bfloat16; what `normalize_resize` and `to_dtype` may write).
    pub const BF16: DType = DType(8);

    /// Bytes per element, `None` for an unknown type.
    pub fn size(self) -> Option<usize> {
        match self {
            DType::U8 => Some(1),
            DType::I16 | DType::F16 | DType::BF16 => Some(2),
            DType::I32 | DType::F32 => Some(4),
            DType::I64 | DType::F64 => Some(8),
            _ => None,
        }
    }
}

/// A tensor's contents in host memory: native-endian, row-major (C order).
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct TensorData {
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub shape: RVec<i64>,
    /// The elements' bytes.
    pub bytes: RVec<u8>,
}

// The trait is written once and expanded per ABI revision: revisions 1.0 and 1.1 stop at
// `release`; 1.2 appends the training methods (defaulted, so an older host answers
// UNSUPPORTED). Only the frozen-revision test fixtures build the older expansion.
macro_rules! declare_executor_trait {
    ($($since_1_2:tt)*) => {
        /// The host's tensor executor.
        #[sabi_trait]
        pub trait Executor: Send + Sync {
            /// The devices work can run on (`"cuda:0"`, `"cpu"`), the default first.
            fn devices(&self) -> RVec<RString>;
            /// Loads (or reuses) a TorchScript model on a device (`""` = default device).
            fn load_model(&self, path: RStr<'_>, device: RStr<'_>) -> PluginResult<ModelId>;
            /// Copies host data into a new tensor on a device (`""` = default device).
            fn tensor_from(&self, data: TensorData, device: RStr<'_>) -> PluginResult<TensorId>;
            /// Copies a tensor's contents back to host memory.
            fn tensor_to(&self, tensor: TensorId) -> PluginResult<TensorData>;
            /// Runs a model's `forward` on tensors; returns its output tensors.
            fn forward(&self, model: ModelId, inputs: RSlice<'_, TensorId>)
                -> PluginResult<RVec<TensorId>>;
            /// Sliding-window inference (MONAI's `SlidingWindowInferer`); `params` is JSON
            /// (`roi_size`, `overlap`, `sw_batch_size`, `mode`, `padding_mode`).
            fn sliding_window(
                &self,
                model: ModelId,
                input: TensorId,
                params: RStr<'_>,
            ) -> PluginResult<TensorId>;
            /// A named tensor operation (`"argmax"`, `"softmax"`, `"threshold"`...); `args` is JSON.
            fn op(
                &self,
                name: RStr<'_>,
                inputs: RSlice<'_, TensorId>,
                args: RStr<'_>,
            ) -> PluginResult<RVec<TensorId>>;
            /// Frees tensors early (they are freed with the app generation otherwise).
            #[sabi(last_prefix_field)]
            fn release(&self, tensors: RSlice<'_, TensorId>);

            $($since_1_2)*
        }
    };
}

#[cfg(any(feature = "abi-1-0", feature = "abi-1-1"))]
declare_executor_trait! {}

#[cfg(not(any(feature = "abi-1-0", feature = "abi-1-1")))]
declare_executor_trait! {
    /// (1.2) Loads a TorchScript module for training on a device: its parameters get the
    /// optimiser, loss and learning-rate schedule `config` names (JSON: `optimizer`,
    /// `loss`, `lr_scheduler`, `amp`, `init`, `seed`). The handle also serves `forward`
    /// and `sliding_window` with the current weights (eval mode, no gradients). It is
    /// freed by `model_op(.., "release", ..)` or with the app generation.
    fn trainable(&self, path: RStr<'_>, device: RStr<'_>, config: RStr<'_>)
        -> PluginResult<ModelId> {
        let _ = (path, device, config);
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "this host does not train models"))
    }
    /// (1.2) One optimisation step of a trainable model: forward on `inputs` in train
    /// mode, the loss against `targets`, backward, optimiser and schedule step. Waits for
    /// the device at training priority first, so interactive work goes before it.
    /// Answers JSON `{"loss", "lr", "step"}`.
    fn train_step(
        &self,
        model: ModelId,
        inputs: RSlice<'_, TensorId>,
        targets: RSlice<'_, TensorId>,
    ) -> PluginResult<RString> {
        let _ = (model, inputs, targets);
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "this host does not train models"))
    }
    /// (1.2) A named operation on a model handle, answering JSON: `save` `{"path"}`
    /// (TorchScript, written atomically), `release`, `info`, `set_lr` `{"lr"}`.
    fn model_op(&self, model: ModelId, name: RStr<'_>, args: RStr<'_>) -> PluginResult<RString> {
        let _ = (model, name, args);
        abi_stable::std_types::RErr(crate::abi::error::PluginError::new(
            crate::abi::error::ErrorCode::UNSUPPORTED, "this host does not train models"))
    }
}
