//! Request params: a JSON object body or form field, and yes/no and text values typed as
//! MONAI Label's clients send them.

use crate::Refused;
use serde_json::{Map, Value};

/// A JSON object from a body or form field; an empty or all-blank body is `{}`.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, Refused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Refused::BadRequest("the body must be a JSON object".into())),
        Err(e) => Err(Refused::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// A yes/no request parameter: a JSON boolean, or the text `true`/`false` (any case; forms
/// send text; MONAI Label took any non-empty text, so `"false"` meant yes). Absent or
/// `null` is `default`; anything else is 400 naming the parameter.
pub fn flag(params: &Map<String, Value>, key: &str, default: bool) -> Result<bool, Refused> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(Refused::BadRequest(format!(
            "'{key}' must be true or false, not {other}"
        ))),
    }
}

/// A text request parameter; absent or `null` is `default`, another type is 400.
pub fn text_param(
    params: &Map<String, Value>,
    key: &str,
    default: &str,
) -> Result<String, Refused> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(Refused::BadRequest(format!(
            "'{key}' must be a string, not {other}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_flags_and_text_are_typed() {
        assert!(json_object(b"  \n").unwrap().is_empty());
        assert_eq!(json_object(br#"{"a": 1}"#).unwrap()["a"], 1);
        assert!(json_object(b"[1]").is_err());
        assert!(json_object(b"{")
            .unwrap_err()
            .message()
            .contains("not valid JSON"));
        let p = json!({"yes": "TRUE", "no": "false", "n": 1, "t": "x", "z": null});
        let p = p.as_object().unwrap();
        assert_eq!(flag(p, "yes", false), Ok(true));
        assert_eq!(flag(p, "no", true), Ok(false));
        assert_eq!(flag(p, "z", true), Ok(true));
        assert!(flag(p, "n", true)
            .unwrap_err()
            .message()
            .starts_with("'n' must be"));
        assert_eq!(text_param(p, "t", "d").unwrap(), "x");
        assert_eq!(text_param(p, "absent", "d").unwrap(), "d");
        assert!(text_param(p, "n", "d").is_err());
    }
}
