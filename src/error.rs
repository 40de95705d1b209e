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

/// The longest `place` an error keeps, in bytes: a place names user data (a key, a case
/// id), which may be megabytes long.
pub const MAX_PLACE_BYTES: usize = 240;

/// The longest `reason` an error keeps, in bytes (a reason may quote user data).
pub const MAX_REASON_BYTES: usize = 2000;

/// `s` itself when it has at most `max` bytes; otherwise its start and end with the number
/// of bytes left out between them, cut at character boundaries.
pub fn clipped(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let keep = max / 2;
    let head = s.floor_char_boundary_compat(keep);
    let tail = s.ceil_char_boundary_compat(s.len() - keep);
    format!(
        "{}…[{} bytes left out]…{}",
        &s[..head],
        tail - head,
        &s[tail..]
    )
}

/// Char-boundary rounding (`str::floor_char_boundary` is not stable yet).
trait CharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
    fn ceil_char_boundary_compat(&self, i: usize) -> usize;
}

impl CharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
    fn ceil_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i += 1;
        }
        i
    }
}

impl Error {
    /// An invalid-case error at `place`.
    pub fn invalid(place: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, place, reason)
    }

    /// An error of the given kind at `place`. A place or reason longer than
    /// [`MAX_PLACE_BYTES`] or [`MAX_REASON_BYTES`] (one that quotes a huge key or string
    /// of the input) is [`clipped`] in the middle.
    pub fn new(kind: ErrorKind, place: impl Into<String>, reason: impl Into<String>) -> Error {
        Error {
            kind,
            place: clipped(place.into(), MAX_PLACE_BYTES),
            reason: clipped(reason.into(), MAX_REASON_BYTES),
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
