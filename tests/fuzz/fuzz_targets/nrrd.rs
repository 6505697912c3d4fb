//! An NRRD file (attached data: raw, gzip or text encodings) through the upload check and
//! the reader (see `labelhost_fuzz::check_volume`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    labelhost_fuzz::check_volume(&labelhost_fuzz::volume_file(data, "nrrd"));
});
