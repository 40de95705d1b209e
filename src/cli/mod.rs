//! The `lossref` command line: one module per subcommand.

pub mod bench;
pub mod bound;
pub mod check;
pub mod corpus;
pub mod eval;
pub mod progress;

use crate::error::{Error, ErrorKind, Result};
use std::io::Read;

/// Exit status for a rejected input (I/O, JSON, invalid case).
pub const EXIT_INVALID: i32 = 1;
/// Exit status for a command-line usage error (clap's own).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when a value cannot be certified below the precision cap.
pub const EXIT_UNCERTIFIED: i32 = 3;

/// The exit status that reports `e`.
pub fn exit_code(e: &Error) -> i32 {
    match e.kind {
        ErrorKind::Uncertified => EXIT_UNCERTIFIED,
        _ => EXIT_INVALID,
    }
}

/// Reads a file, or standard input for `-`, refusing more than `limit` bytes and text that
/// is not UTF-8.
///
/// # Errors
/// An [`ErrorKind::Io`] error naming the file.
pub fn read_input(path: &str, limit: usize) -> Result<String> {
    let name = if path == "-" { "standard input" } else { path };
    let io = |reason: String| Error::new(ErrorKind::Io, name, reason);
    let mut bytes = Vec::new();
    let reader: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| io(format!("cannot open: {e}")))?)
    };
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(format!("cannot read: {e}")))?;
    if bytes.len() > limit {
        return Err(io(format!("larger than the limit of {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        io(format!(
            "not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}
