//! A NIfTI-1 file (`.nii`, or `.nii.gz` when it starts with gzip's magic) through the upload
//! check, the reader and the header-only grid (see `labelhost_fuzz::check_volume`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ext = if data.starts_with(&[0x1f, 0x8b]) {
        "nii.gz"
    } else {
        "nii"
    };
    labelhost_fuzz::check_volume(&labelhost_fuzz::volume_file(data, ext));
});
