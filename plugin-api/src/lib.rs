//! labelhost's plugin boundary: the stable ABI every loaded app speaks ([`abi`]) and
//! the safe SDK plugin authors write apps with ([`sdk`]).
//!
//! A plugin is a `cdylib` that depends on this crate, implements [`sdk::App`] and calls
//! [`export_app!`] once. The host loads it through [`abi::AppModuleRef`]. Nothing in this
//! crate links libtorch: tensors live in the host and are reached through opaque handles.

pub mod abi;
pub mod ops;
pub mod sdk;

/// The plugin author's guide, compiled here only so its Rust blocks run as doc tests.
#[cfg(all(doctest, feature = "nifti"))]
#[doc = include_str!("../GUIDE.md")]
pub struct Guide;

#[doc(hidden)]
pub use abi_stable as __abi_stable;

/// The plugin-api version this crate was built as (the ABI revision plugins record).
pub const PLUGIN_API_VERSION: &str = abi::root::ABI_VERSION;
