//! The datastore routes' pure helpers: default ids, checksums, form JSON, file headers.

use super::images::Checksum;
use super::stem;
use crate::api::upload::{content_disposition, json_field};
use crate::Error;

#[test]
fn the_default_id_drops_folders_and_every_suffix() {
    assert_eq!(stem("abc.nii.gz"), "abc");
    assert_eq!(stem("C:\\scans\\case.01.seg.nrrd"), "case");
    assert_eq!(stem("/tmp/plain"), "plain");
    assert_eq!(stem(".hidden.nii"), ".hidden");
}

#[test]
fn checksums_name_their_algorithm_or_default_to_sha256() {
    assert_eq!(
        Checksum::parse("SHA256:AB12").ok(),
        Some(Checksum::Sha256("ab12".into()))
    );
    assert_eq!(
        Checksum::parse("ab12").ok(),
        Some(Checksum::Sha256("ab12".into()))
    );
    assert_eq!(
        Checksum::parse("sha512:cd").ok(),
        Some(Checksum::Sha512("cd".into()))
    );
    assert!(matches!(
        Checksum::parse("MD5:00"),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn form_json_is_an_object_and_blank_means_empty() {
    assert!(json_field("params", b"  ").is_ok_and(|m| m.is_empty()));
    assert!(json_field("params", b"null").is_ok_and(|m| m.is_empty()));
    assert!(json_field("params", br#"{"a":1}"#).is_ok_and(|m| m["a"] == 1));
    assert!(matches!(
        json_field("params", b"[1]"),
        Err(Error::BadRequest(_))
    ));
    assert!(matches!(
        json_field("info", b"{nope"),
        Err(Error::BadRequest(_))
    ));
}

#[test]
fn downloads_name_the_file_like_starlette() {
    assert_eq!(
        content_disposition("img00.nii.gz"),
        "attachment; filename=\"img00.nii.gz\""
    );
    assert_eq!(
        content_disposition("a b\u{e9}.nrrd"),
        "attachment; filename*=utf-8''a%20b%C3%A9.nrrd"
    );
}
