//! The one error type: every failure names the place (a JSON path such as
//! `inputs.logits[2][0]`, a file, an output) and the reason. Nothing user-supplied panics.

use std::fmt;

/// What went wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Which stage failed.
    pub kind: ErrorKind,
    /// Where: a JSON path, a file name, an output name with its index.
    pub place: String,
    /// Why, in words a user can act on.
    pub reason: String,
}

/// The stage that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading a file or standard input.
    Io,
    /// The text is not JSON.
    Json,
    /// The JSON is not a valid case (SPEC §3), or the case hits an undefined point (SPEC §1).
    Invalid,
    /// The reference could not certify a value within the precision cap.
    Uncertified,
}

impl Error {
    /// An invalid-case error at `place`.
    pub fn invalid(place: impl Into<String>, reason: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Invalid,
            place: place.into(),
            reason: reason.into(),
        }
    }

    /// An error of the given kind at `place`.
    pub fn new(kind: ErrorKind, place: impl Into<String>, reason: impl Into<String>) -> Error {
        Error {
            kind,
            place: place.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.place, self.reason)
        }
    }
}

impl std::error::Error for Error {}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
