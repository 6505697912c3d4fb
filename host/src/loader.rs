//! Opens a plugin library and checks it can be trusted with the ABI: version first, then
//! the layout in the direction the versions imply, then an unchecked init.
//!
//! abi_stable's own checked load refuses an older minor (its checker never lets the
//! plugin's types have fewer fields), so the direction is chosen here: a plugin built
//! against an older-or-equal minor must be a prefix of the host's layout; a newer one the
//! reverse. Another major is refused with one line; full layout reports go to the log.
//! A plugin built with `panic = "abort"` (its `LABELHOST_PANIC_UNWIND` symbol is 0) is
//! refused before its root module runs: its first panic would abort the server.

use abi_stable::{
    abi_stability::abi_checking::check_layout_compatibility,
    library::{lib_header_from_path, LibHeader, RootModule},
    StableAbi,
};
use labelhost_plugin_api::abi::{AppModuleRef, Manifest, ABI_VERSION};
use semver::Version;
use std::path::Path;

/// Why a library was refused; `Display` is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// dlopen failed or the root-module symbol is missing.
    #[error("{path}: not a loadable labelhost plugin: {reason}")]
    Open {
        /// The library file.
        path: String,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The plugin's plugin-api version cannot be used by this host.
    #[error(
        "{path}: built against plugin-api {plugin}, this host speaks plugin-api {host}: {why}"
    )]
    Version {
        /// The library file.
        path: String,
        /// The plugin's plugin-api version.
        plugin: String,
        /// The host's plugin-api version.
        host: String,
        /// Which rule refused it.
        why: &'static str,
    },
    /// The plugin's types do not match the ABI its version claims.
    #[error("{path}: plugin-api {plugin} layout does not match this host's {host} (layout report in the log)")]
    Layout {
        /// The library file.
        path: String,
        /// The plugin's plugin-api version.
        plugin: String,
        /// The host's plugin-api version.
        host: String,
    },
    /// The plugin was built with `panic = "abort"`.
    #[error("{path}: built with panic = \"abort\": its first panic would abort the server; build it with panic = \"unwind\" (Cargo's default)")]
    PanicAbort {
        /// The library file.
        path: String,
    },
    /// The root module's constructor failed or panicked.
    #[error("{path}: root module failed to initialise: {reason}")]
    Init {
        /// The library file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl LoadError {
    /// Whether the library was mapped before it was refused (mapped libraries are never
    /// unmapped, so they count as leaked).
    pub fn mapped(&self) -> bool {
        !matches!(self, LoadError::Open { .. })
    }
}

/// A library whose root module passed the checks. Its code stays mapped for the life of
/// the process (abi_stable never unloads libraries).
#[derive(Clone, Copy)]
pub struct PluginLibrary {
    /// The root module.
    pub module: AppModuleRef,
}

impl PluginLibrary {
    /// The plugin's manifest.
    pub fn manifest(&self) -> Manifest {
        (self.module.manifest())()
    }
}

/// The host's plugin-api version.
pub fn host_version() -> Version {
    Version::parse(ABI_VERSION).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// Whether the library at `path` unwinds on panic, from the symbol `export_app!` exports
/// (`None`: a plugin built before the SDK exported it).
fn unwinds(path: &Path) -> Option<bool> {
    // SAFETY: the library is already loaded (lib_header_from_path opened it and never
    // closes it), so this dlopen runs no initialiser and returns the same handle; the
    // symbol is a `u8` static the SDK's macro defines, read once while the handle lives.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let flag = lib.get::<*const u8>(b"LABELHOST_PANIC_UNWIND\0").ok()?;
        Some(**flag != 0)
    }
}

/// Opens `path` (absolute, never opened before: dlopen reuses a path it has seen) and
/// checks version and layout.
pub fn open(path: &Path) -> Result<PluginLibrary, LoadError> {
    let shown = path.display().to_string();
    let header = lib_header_from_path(path).map_err(|e| LoadError::Open {
        path: shown.clone(),
        reason: first_line(&e.to_string()),
    })?;
    check(header, &shown)?;
    if unwinds(path) == Some(false) {
        return Err(LoadError::PanicAbort { path: shown });
    }
    // SAFETY: `check` verified the layout in the direction the versions allow; prefix
    // getters check each optional field's presence at run time.
    let module = unsafe { header.init_root_module_with_unchecked_layout::<AppModuleRef>() }
        .map_err(|e| LoadError::Init {
            path: shown,
            reason: one_line(&e.to_string()),
        })?;
    Ok(PluginLibrary { module })
}

fn check(header: &LibHeader, path: &str) -> Result<(), LoadError> {
    let host = host_version();
    let plugin_text = header.version_strings().to_string();
    let version_error = |why| LoadError::Version {
        path: path.to_owned(),
        plugin: plugin_text.clone(),
        host: host.to_string(),
        why,
    };
    let plugin = Version::parse(&plugin_text).map_err(|_| version_error("unparsable version"))?;
    if plugin.major != host.major {
        return Err(version_error("different major versions are incompatible"));
    }
    let Some(plugin_layout) = header.layout() else {
        return Err(version_error("the plugin exports no layout to check"));
    };
    let host_layout = <AppModuleRef as StableAbi>::LAYOUT;
    let checked = if plugin.minor <= host.minor {
        check_layout_compatibility(plugin_layout, host_layout)
    } else {
        check_layout_compatibility(host_layout, plugin_layout)
    };
    if let Err(report) = checked {
        tracing::error!(path, plugin = %plugin, host = %host, "layout mismatch:\n{report}");
        return Err(LoadError::Layout {
            path: path.to_owned(),
            plugin: plugin.to_string(),
            host: host.to_string(),
        });
    }
    debug_assert_eq!(AppModuleRef::NAME, "labelhost_app");
    Ok(())
}

/// Every non-blank line of `text`, trimmed and joined by spaces (abi_stable puts the cause
/// of an init failure on the line after its headline).
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ")
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}
