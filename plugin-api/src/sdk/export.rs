//! [`export_app!`](crate::export_app): the one macro a plugin calls to export its root module.

/// Exports an [`sdk::App`](crate::sdk::App) as a labelhost plugin.
///
/// Call it once at the crate root of a `cdylib`; the crate must also depend on
/// `abi_stable` directly (the root-module attribute expands to `::abi_stable` paths).
/// The manifest takes the app's version and description from the crate's Cargo.toml.
///
/// ```ignore
/// labelhost_plugin_api::export_app!(MyApp);
/// ```
#[macro_export]
macro_rules! export_app {
    ($app:ty) => {
        #[allow(missing_docs)]
        const _: () = {
            /// 1 when the plugin unwinds on panic (the SDK then turns a panic into an
            /// error), 0 when built with `panic = "abort"` (the host refuses to load it:
            /// its first panic would abort the server).
            #[unsafe(no_mangle)]
            pub static LABELHOST_PANIC_UNWIND: u8 = if cfg!(panic = "unwind") { 1 } else { 0 };

            #[::abi_stable::export_root_module]
            pub fn labelhost_root_module() -> $crate::abi::AppModuleRef {
                use ::abi_stable::prefix_type::PrefixTypeTrait;
                $crate::abi::AppModule::new(__labelhost_manifest, __labelhost_new_app)
                    .leak_into_prefix()
            }

            #[::abi_stable::sabi_extern_fn]
            fn __labelhost_manifest() -> $crate::abi::Manifest {
                $crate::sdk::AppAdapter::<$app>::manifest(
                    env!("CARGO_PKG_VERSION"),
                    env!("CARGO_PKG_DESCRIPTION"),
                )
            }

            #[::abi_stable::sabi_extern_fn]
            fn __labelhost_new_app(
                host: $crate::abi::HostBox,
            ) -> $crate::abi::PluginResult<$crate::abi::AppBox> {
                $crate::sdk::AppAdapter::<$app>::construct(host)
            }
        };
    };
}
