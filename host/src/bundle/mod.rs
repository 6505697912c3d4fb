//! App bundles: a folder (or a `.tar`/`.tar.gz` of one) holding a plugin library, its model
//! files and assets, and `labelhost-bundle.json` listing each file with its sha256. Staging
//! copies a bundle to a fresh folder, hashing as it copies, so what is loaded is exactly
//! what was verified.

mod archive;

pub use archive::{list, locate, write_archive, BundleSource};

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    fs::{self, File},
    io::{Read, Write},
    path::{Component, Path, PathBuf},
};

/// The manifest's file name inside a bundle folder.
pub const MANIFEST_FILE: &str = "labelhost-bundle.json";

/// `labelhost-bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleManifest {
    /// The app's name (must equal the plugin's own).
    pub name: String,
    /// The app's version, semver (must equal the plugin's own).
    pub version: String,
    /// The plugin-api version the plugin was built against.
    pub plugin_api: String,
    /// The platform the library was built for (`x86_64-linux`).
    pub target: String,
    /// The library's path inside the bundle.
    pub library: String,
    /// Every file of the bundle, the library included.
    pub files: Vec<BundleFile>,
}

/// One file of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleFile {
    /// Path inside the bundle, `/`-separated, relative.
    pub path: String,
    /// Lower-case hex sha256 of the contents.
    pub sha256: String,
}

/// A bundle copied to its own folder and verified.
#[derive(Debug, Clone)]
pub struct StagedBundle {
    /// Where the copy lives.
    pub dir: PathBuf,
    /// The copied library (a unique path: dlopen never saw it).
    pub library: PathBuf,
    /// The library's sha256.
    pub library_sha256: String,
    /// The verified manifest.
    pub manifest: BundleManifest,
}

/// The platform string bundles are checked against.
pub fn host_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// Checks a relative in-bundle path: no absolute paths, no `..`, nothing empty.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(Error::PluginLoad(format!(
            "bundle file path '{path}' is not a plain relative path"
        )))
    }
}

/// Reads and sanity-checks a bundle's manifest.
pub fn read_manifest(bundle: &Path) -> Result<BundleManifest> {
    let path = bundle.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path)
        .map_err(|e| Error::PluginLoad(format!("{}: {e}", path.display())))?;
    let manifest: BundleManifest = serde_json::from_str(&text)
        .map_err(|e| Error::PluginLoad(format!("{}: bad manifest: {e}", path.display())))?;
    for f in &manifest.files {
        safe_relative(&f.path)?;
    }
    if !manifest.files.iter().any(|f| f.path == manifest.library) {
        return Err(Error::PluginLoad(format!(
            "bundle {}: library {} is not listed in files",
            manifest.name, manifest.library
        )));
    }
    if manifest.target != host_target() {
        return Err(Error::PluginLoad(format!(
            "bundle {} is built for {}, this host is {}",
            manifest.name,
            manifest.target,
            host_target()
        )));
    }
    Ok(manifest)
}

/// Copies `src` to `dst`, returning the sha256 of the bytes copied.
fn copy_hashing(src: &Path, dst: &Path) -> std::io::Result<String> {
    let mut input = File::open(src)?;
    let mut output = File::create(dst)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
    }
    output.sync_all()?;
    Ok(hex::encode(hasher.finalize()))
}

/// The sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut input = File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut input, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Copies a bundle into `dest` (which must not exist), verifying every file against the
/// manifest. On any mismatch the copy is removed and the bundle refused.
pub fn stage(source: &BundleSource, dest: &Path) -> Result<StagedBundle> {
    match source {
        BundleSource::Folder(dir) => stage_folder(dir, dest),
        BundleSource::Archive(file) => {
            let unpacked = dest.with_extension("unpacked");
            let staged =
                archive::unpack(file, &unpacked).and_then(|()| stage_folder(&unpacked, dest));
            let _ = fs::remove_dir_all(&unpacked);
            staged
        }
    }
}

fn stage_folder(bundle: &Path, dest: &Path) -> Result<StagedBundle> {
    let manifest = read_manifest(bundle)?;
    // A fresh folder of our own: never write into files another process may have mapped.
    let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", dest.display()));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    fs::create_dir(dest).map_err(io)?;
    let staged = stage_files(bundle, dest, &manifest);
    if staged.is_err() {
        let _ = fs::remove_dir_all(dest);
    }
    let library_sha256 = staged?;
    Ok(StagedBundle {
        dir: dest.to_path_buf(),
        library: dest.join(&manifest.library),
        library_sha256,
        manifest,
    })
}

fn stage_files(bundle: &Path, dest: &Path, manifest: &BundleManifest) -> Result<String> {
    let io = |e: std::io::Error, p: &Path| Error::PluginLoad(format!("{}: {e}", p.display()));
    let mut library_sha = String::new();
    for file in &manifest.files {
        let rel = safe_relative(&file.path)?;
        let (src, dst) = (bundle.join(&rel), dest.join(&rel));
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        }
        let found = copy_hashing(&src, &dst).map_err(|e| io(e, &src))?;
        if !found.eq_ignore_ascii_case(&file.sha256) {
            return Err(Error::PluginLoad(format!(
                "bundle {}: {} does not match the manifest (sha256 {} expected, {} found)",
                manifest.name, file.path, file.sha256, found
            )));
        }
        if file.path == manifest.library {
            library_sha = found;
        }
    }
    Ok(library_sha)
}

/// Writes a bundle folder `out` from a library and assets `(source, path in bundle)`.
/// The name, version and plugin-api version come from the library's own manifest.
pub fn pack(
    library: &Path,
    assets: &[(PathBuf, String)],
    out: &Path,
    plugin: &labelhost_plugin_api::abi::Manifest,
) -> Result<BundleManifest> {
    pack_reporting(library, assets, out, plugin, &mut |_, _| {})
}

/// [`pack`], telling `done(path in bundle, bytes)` after each file is written.
pub fn pack_reporting(
    library: &Path,
    assets: &[(PathBuf, String)],
    out: &Path,
    plugin: &labelhost_plugin_api::abi::Manifest,
    done: &mut dyn FnMut(&str, u64),
) -> Result<BundleManifest> {
    let io = |e: std::io::Error, p: &Path| Error::Internal(format!("{}: {e}", p.display()));
    fs::create_dir_all(out).map_err(|e| io(e, out))?;
    let lib_name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::BadRequest(format!("{} is not a file", library.display())))?;
    let mut entries = vec![(library.to_path_buf(), lib_name.clone())];
    entries.extend(assets.iter().cloned());
    let mut files = Vec::new();
    for (src, rel) in &entries {
        let dst = out.join(safe_relative(rel)?);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(|e| io(e, parent))?;
        }
        let sha256 = copy_hashing(src, &dst).map_err(|e| io(e, src))?;
        done(rel, fs::metadata(&dst).map_or(0, |m| m.len()));
        files.push(BundleFile {
            path: rel.clone(),
            sha256,
        });
    }
    let manifest = BundleManifest {
        name: plugin.name.to_string(),
        version: plugin.version.to_string(),
        plugin_api: plugin.plugin_api.to_string(),
        target: host_target(),
        library: lib_name,
        files,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
    let path = out.join(MANIFEST_FILE);
    fs::write(&path, text).map_err(|e| io(e, &path))?;
    Ok(manifest)
}
