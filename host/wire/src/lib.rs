//! What arrives over HTTP, read before the host interprets it: multipart bodies scanned for
//! over-long part headers ([`multipart`]), JSON params and MONAI Label's loosely typed flags
//! ([`params`]), and a train request's known parameters ([`train`]).
//!
//! Its own crate so that the fuzz targets (tests/fuzz) build it without the executor and
//! libtorch; the host maps [`Refused`] onto its HTTP errors.

pub mod multipart;
pub mod params;
pub mod train;

/// Why a request was refused, with the message the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Malformed: HTTP 400.
    BadRequest(String),
    /// Well-formed but a known parameter has the wrong type or range: HTTP 422.
    Unprocessable(String),
}

impl Refused {
    /// The message the client reads.
    pub fn message(&self) -> &str {
        match self {
            Refused::BadRequest(m) | Refused::Unprocessable(m) => m,
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Refused {}
