//! Reading a trainable's JSON config: sections, numbers, names, typed errors.

use crate::executor::scope::err;
use labelhost_plugin_api::abi::{ErrorCode, PluginError};
use serde_json::{Map, Value};

pub(super) type Res<T> = Result<T, PluginError>;

pub(super) fn bad(msg: impl Into<String>) -> PluginError {
    err(ErrorCode::INVALID_INPUT, msg)
}

pub(super) fn section<'a>(config: &'a Value, key: &str) -> Res<&'a Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match config.get(key) {
        None | Some(Value::Null) => Ok(EMPTY.get_or_init(Map::new)),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(bad(format!("trainable: '{key}' must be an object"))),
    }
}

pub(super) fn number(m: &Map<String, Value>, key: &str, default: f64) -> Res<f64> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(format!("trainable: '{key}' must be a number"))),
    }
}

pub(super) fn name<'a>(m: &'a Map<String, Value>, default: &'a str) -> &'a str {
    m.get("name").and_then(Value::as_str).unwrap_or(default)
}
