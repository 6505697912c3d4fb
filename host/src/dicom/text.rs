//! DICOM values as text: decimal strings (DS) within their 16 characters, and string values
//! without the padding (NUL or space) that makes them even-length.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

/// A decimal string of at most 16 characters (the DS limit), as many decimals as fit.
pub(super) fn ds(v: f64) -> String {
    for digits in (0..=10).rev() {
        let s = format!("{v:.digits$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    format!("{v:.3e}")
}

/// Several decimal strings, `\`-separated.
pub(super) fn ds_multi(values: &[f64]) -> String {
    values.iter().map(|v| ds(*v)).collect::<Vec<_>>().join("\\")
}

/// A string value without its padding.
pub(super) fn unpadded(s: &str) -> String {
    s.trim_end_matches(['\0', ' ']).to_owned()
}

/// Element `tag`'s value as text without its padding, if the object has it.
pub(super) fn string_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    Some(unpadded(&obj.element(tag).ok()?.to_str().ok()?))
}
