//! `labelhost pack`: an app bundle (folder or `.tar.gz`) from a plugin library and its
//! assets, with the manifest read from the library itself.

use super::progress;
use crate::{bundle, config::PackArgs, loader, Error, Result};
use std::path::PathBuf;

/// Packs the bundle `args` describe; prints what was written.
pub fn run(args: &PackArgs) -> Result<()> {
    let library = std::path::absolute(&args.library)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", args.library.display())))?;
    // Open a private copy: the path stays free for the next build of the plugin.
    // A private folder with a random name, removed when it is dropped.
    let scratch = tempfile::Builder::new()
        .prefix("labelhost-pack-")
        .tempdir()
        .map_err(|e| Error::Internal(format!("cannot make a scratch folder: {e}")))?;
    let probe = scratch.path().join("probe.so");
    std::fs::copy(&library, &probe)
        .map_err(|e| Error::BadRequest(format!("{}: {e}", library.display())))?;
    let opened = loader::open(&probe);
    let _ = std::fs::remove_file(&probe);
    let manifest = opened
        .map_err(|e| Error::PluginLoad(e.to_string()))?
        .manifest();
    let assets = assets(&args.assets)?;
    let total: u64 = std::iter::once(&library)
        .chain(assets.iter().map(|(src, _)| src))
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let bar = progress::bytes(total, "packing");
    let mut done = |path: &str, len: u64| {
        bar.set_message(path.to_owned());
        bar.inc(len);
    };
    let (written, path) = if args.archive {
        let staging = scratch.path().join("bundle");
        let packed = bundle::pack_reporting(&library, &assets, &staging, &manifest, &mut done);
        let path = PathBuf::from(format!("{}.tar.gz", args.out.display()));
        bar.set_message(format!("archiving {}", path.display()));
        let archived = packed.and_then(|m| bundle::write_archive(&staging, &path).map(|()| m));
        let _ = std::fs::remove_dir_all(&staging);
        (archived?, path)
    } else {
        let packed = bundle::pack_reporting(&library, &assets, &args.out, &manifest, &mut done);
        (packed?, args.out.clone())
    };
    bar.finish_and_clear();
    let (name, version, api) = (&written.name, &written.version, &written.plugin_api);
    println!(
        "bundle {name} {version} (plugin-api {api}) written to {}",
        path.display()
    );
    Ok(())
}

/// `SOURCE[=PATH_IN_BUNDLE]` flags as (source, path in bundle); the path defaults to the
/// source's file name. A source that is not a file is refused before anything is written.
fn assets(flags: &[String]) -> Result<Vec<(PathBuf, String)>> {
    flags
        .iter()
        .map(|a| {
            let (src, dst) = match a.split_once('=') {
                Some((src, dst)) => (PathBuf::from(src), dst.to_owned()),
                None => {
                    let src = PathBuf::from(a);
                    let name = src
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (src, name)
                }
            };
            if !src.is_file() {
                return Err(Error::BadRequest(format!(
                    "--asset {a}: {} is not a file",
                    src.display()
                )));
            }
            Ok((src, dst))
        })
        .collect()
}
