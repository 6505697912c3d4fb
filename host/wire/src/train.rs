//! MONAI Label's train request, checked before a job is recorded: each known parameter
//! must have its type and range, or the request is answered 422 naming it. Unknown keys
//! pass through to the trainer (apps add their own).

use crate::Refused;
use serde_json::{Map, Value};

/// What a known parameter must be.
enum Rule {
    /// A whole number from this to a million.
    Int(i64),
    /// A number within `[lo, hi]`.
    Float(f64, f64),
    /// `true` or `false`.
    Bool,
    /// A string.
    Text,
    /// A file-name-safe string (it names a folder under the model dir).
    Name,
}

const RULES: &[(&str, Rule)] = &[
    ("name", Rule::Name),
    ("pretrained", Rule::Bool),
    ("device", Rule::Text),
    ("max_epochs", Rule::Int(1)),
    ("early_stop_patience", Rule::Int(-1)),
    ("val_split", Rule::Float(0.0, 1.0)),
    ("train_batch_size", Rule::Int(1)),
    ("val_batch_size", Rule::Int(1)),
    ("val_interval", Rule::Int(1)),
    ("multi_gpu", Rule::Bool),
    ("amp", Rule::Bool),
    ("lr", Rule::Float(f64::MIN_POSITIVE, 10.0)),
    ("max_iterations", Rule::Int(1)),
    ("seed", Rule::Int(0)),
];

fn check(key: &str, rule: &Rule, v: &Value) -> std::result::Result<(), String> {
    match rule {
        Rule::Int(min) => match v.as_i64() {
            Some(n) if n >= *min && n <= 1_000_000 => Ok(()),
            Some(n) if n > 1_000_000 => Err(format!("must be at most 1000000, got {n}")),
            Some(n) => Err(format!("must be at least {min}, got {n}")),
            None => Err(format!("must be a whole number, got {v}")),
        },
        Rule::Float(lo, hi) => match v.as_f64() {
            Some(x) if (*lo..=*hi).contains(&x) => Ok(()),
            Some(x) => Err(format!("must be between {lo} and {hi}, got {x}")),
            None => Err(format!("must be a number, got {v}")),
        },
        Rule::Bool => v
            .as_bool()
            .map(drop)
            .ok_or_else(|| format!("must be true or false, got {v}")),
        Rule::Text => v
            .as_str()
            .map(drop)
            .ok_or_else(|| format!("must be a string, got {v}")),
        Rule::Name => match v.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    && !s.starts_with('.') =>
            {
                Ok(())
            }
            _ => Err(format!(
                "must be 1-64 letters, digits, '_', '-' or '.' (not leading), got {v}"
            )),
        },
    }
    .map_err(|why| format!("{key} {why}"))
}

/// Checks the known parameters of a train request (`gpus` may be `"all"`, a string of
/// ids or a list).
pub fn validate(request: &Map<String, Value>) -> Result<(), Refused> {
    for (key, rule) in RULES {
        if let Some(v) = request.get(*key) {
            check(key, rule, v).map_err(Refused::Unprocessable)?;
        }
    }
    if let Some(g) = request.get("gpus") {
        if !(g.is_string() || g.as_array().is_some_and(|a| a.iter().all(Value::is_u64))) {
            return Err(Refused::Unprocessable(format!(
                "gpus must be \"all\", a comma-separated string or a list of ids, got {g}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::validate;
    use serde_json::json;

    fn refused(body: serde_json::Value) -> String {
        let map = body.as_object().cloned().expect("object");
        validate(&map).expect_err("refused").to_string()
    }

    #[test]
    fn monai_train_params_are_typed_and_ranged() {
        let ok = json!({"name": "train_01", "pretrained": false, "device": "cpu",
            "max_epochs": 5, "early_stop_patience": -1, "val_split": 0.2, "train_batch_size": 2,
            "val_batch_size": 1, "multi_gpu": true, "gpus": "all", "custom": [1]});
        assert!(validate(ok.as_object().expect("object")).is_ok());
        assert!(refused(json!({"max_epochs": "ten"})).starts_with("max_epochs must be a whole"));
        assert!(refused(json!({"max_epochs": 0})).starts_with("max_epochs must be at least 1"));
        assert!(
            refused(json!({"max_epochs": 1u64 << 40})).starts_with("max_epochs must be at most")
        );
        assert!(refused(json!({"val_split": 1.5})).starts_with("val_split must be between"));
        assert!(refused(json!({"pretrained": "yes"})).starts_with("pretrained must be"));
        assert!(refused(json!({"train_batch_size": 2.5})).starts_with("train_batch_size"));
        assert!(refused(json!({"name": "../x"})).starts_with("name must be"));
        assert!(refused(json!({"gpus": {"a": 1}})).starts_with("gpus must be"));
    }
}
