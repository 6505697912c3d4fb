//! The error value every fallible ABI call returns: MONAI Label's error codes plus a message.

use abi_stable::{
    std_types::{RResult, RString},
    StableAbi,
};
use std::fmt;

/// A MONAI Label error code (`MONAILabelError`), plus labelhost's own.
///
/// An open newtype rather than an enum so a newer side can send a code an older side
/// does not know: it is shown as `UNKNOWN_ERROR` there.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $value:expr;)*) => {
        impl ErrorCode {
            $($(#[$doc])* pub const $name: ErrorCode = ErrorCode($value);)*

            /// The code's name as MONAI Label spells it (`"INFERENCE_ERROR"`).
            pub fn as_str(self) -> &'static str {
                match self.0 {
                    $($value => stringify!($name),)*
                    _ => "UNKNOWN_ERROR",
                }
            }

            /// Parses a code name; unknown names give `None`.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name {
                    $(stringify!($name) => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// A failure of the server itself.
    SERVER_ERROR = 1;
    /// A failure nobody classified.
    UNKNOWN_ERROR = 2;
    /// A class (task, strategy...) could not be constructed.
    CLASS_INIT_ERROR = 3;
    /// A model file could not be loaded.
    MODEL_IMPORT_ERROR = 4;
    /// Running a model failed.
    INFERENCE_ERROR = 5;
    /// A transform failed.
    TRANSFORM_ERROR = 6;
    /// The request is malformed or names something that does not exist.
    INVALID_INPUT = 7;
    /// The app could not be initialised.
    APP_INIT_ERROR = 8;
    /// The app's inference failed.
    APP_INFERENCE_FAILED = 9;
    /// The app's training failed.
    APP_TRAIN_FAILED = 10;
    /// Any other app failure.
    APP_ERROR = 11;
    /// An image, label or other object does not exist (labelhost).
    NOT_FOUND = 12;
    /// The callee does not offer this feature (labelhost).
    UNSUPPORTED = 13;
    /// Plugin code panicked; the panic was caught at the boundary (labelhost).
    PLUGIN_PANIC = 14;
    /// The device (CPU or GPU) could not allocate what the work needed; it may succeed
    /// later or with less (labelhost).
    OUT_OF_MEMORY = 15;
    /// The work needs more memory than its request's budget allows: the same request will
    /// not fit later either (labelhost).
    OVER_BUDGET = 16;
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error crossing the boundary: a code and a human-readable message.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What happened, for the user.
    pub message: RString,
}

impl PluginError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PluginError {
            code,
            message: RString::from(message.into()),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}

/// The result type of every fallible ABI call.
pub type PluginResult<T> = RResult<T, PluginError>;

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn codes_round_trip_and_unknown_codes_read_as_unknown() {
        for code in [
            ErrorCode::INFERENCE_ERROR,
            ErrorCode::INVALID_INPUT,
            ErrorCode::PLUGIN_PANIC,
        ] {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::APP_TRAIN_FAILED.as_str(), "APP_TRAIN_FAILED");
        assert_eq!(ErrorCode(999).as_str(), "UNKNOWN_ERROR");
        assert_eq!(ErrorCode::from_name("NOPE"), None);
    }
}
