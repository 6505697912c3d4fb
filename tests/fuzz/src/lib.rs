//! What the fuzz targets share: a fuzz input as a volume file on disk, and the properties
//! every reader must keep on it.

use labelhost_plugin_api::sdk::image::{geometry, inspect, Geometry, ReadOptions};
use std::path::PathBuf;

/// The voxel limit the targets read with: large enough for every corpus file, small
/// enough that a lying header cannot make an iteration slow.
pub const MAX_VOXELS: u64 = 1 << 20;

/// Writes `data` to this process's scratch file named `volume.<ext>` and returns its path.
pub fn volume_file(data: &[u8], ext: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("labelhost-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(format!("volume.{ext}"));
    std::fs::write(&path, data).expect("scratch file");
    path
}

/// The properties of one volume file, whatever its bytes: no reader panics; what the
/// upload check ([`inspect`]) accepts, reading accepts too, on the same grid; the header
/// alone ([`geometry`]) agrees with both.
pub fn check_volume(path: &std::path::Path) {
    let options = ReadOptions::with_max_voxels(MAX_VOXELS);
    let checked = inspect(path, &options);
    let read = options.read(path);
    let header = geometry(path, &options);
    if let Ok(g) = &checked {
        let volume = match read {
            Ok(v) => v,
            Err(e) => panic!("the upload check accepted {g:?} but reading refused it: {e}"),
        };
        let got = Geometry {
            shape: volume.data.shape().to_vec(),
            affine: volume.affine(),
        };
        assert_eq!(
            got.spatial(),
            g.spatial(),
            "read and the upload check see different grids"
        );
        assert!(g.shape.iter().product::<usize>() as u64 <= MAX_VOXELS);
        match header {
            Ok(h) => assert_eq!(h.spatial(), g.spatial(), "header-only grid differs"),
            Err(e) => {
                panic!("the upload check accepted the file but its header alone is refused: {e}")
            }
        }
    }
}
