//! A case must not be ambiguous: JSON lets an object repeat a key, and most readers keep
//! the last value silently, so a repeated key is found (with its line and column) and
//! refused.

use crate::error::{Error, ErrorKind, Result};

use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;

/// JSON allows an object to repeat a key and most readers keep the last value silently; a
/// case that says `"labels"` twice is ambiguous, so it is rejected. `text` is valid JSON and
/// `value` what it parsed to. The parser keeps one entry per key, so the text holds a
/// repeated key exactly when it has more keys than `value`'s objects: one counting pass,
/// and only then a pass that finds the key (hashing every key costs several times more).
pub(super) fn reject_duplicate_keys(text: &str, value: &Value) -> Result<()> {
    fn keys_in(value: &Value) -> usize {
        match value {
            Value::Object(map) => map.len() + map.values().map(keys_in).sum::<usize>(),
            Value::Array(items) => items.iter().map(keys_in).sum(),
            _ => 0,
        }
    }
    if keys_in_text(text) == keys_in(value) {
        return Ok(());
    }
    locate_duplicate_key(text)
}

/// What [`walk_keys`] meets in a JSON text: an object opening or closing, or a key, whose
/// quoted text is `text[start..end]`.
enum KeyEvent {
    Open,
    Close,
    Key { start: usize, end: usize },
}

/// Walks the valid JSON `text` once, in order, calling `on` at every object's `{` and `}`
/// and at every key; stops at the first error of `on`.
fn walk_keys<E>(
    text: &str,
    mut on: impl FnMut(KeyEvent) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let bytes = text.as_bytes();
    // One entry per open container: (is an object, the next string is a key).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push((true, true));
                on(KeyEvent::Open)?;
            }
            b'[' => stack.push((false, false)),
            b'}' | b']' => {
                if let Some((true, _)) = stack.pop() {
                    on(KeyEvent::Close)?;
                }
            }
            b',' => {
                if let Some((true, expect_key)) = stack.last_mut() {
                    *expect_key = true;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some((true, expect_key)) = stack.last_mut() {
                    if *expect_key {
                        *expect_key = false;
                        let end = (i + 1).min(bytes.len());
                        on(KeyEvent::Key { start, end })?;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The number of object keys in the valid JSON `text`.
fn keys_in_text(text: &str) -> usize {
    let mut keys = 0;
    let _ = walk_keys(text, |event| {
        if let KeyEvent::Key { .. } = event {
            keys += 1;
        }
        Ok::<(), std::convert::Infallible>(())
    });
    keys
}

/// Finds the first repeated key of the valid JSON `text` and reports it with its line and
/// column.
fn locate_duplicate_key(text: &str) -> Result<()> {
    // The keys seen so far in each open object. Keys borrow the text unless they hold an
    // escape (`"a\u0062"` is the key "ab").
    let mut objects: Vec<HashSet<Cow<'_, str>>> = Vec::new();
    walk_keys(text, |event| {
        match event {
            KeyEvent::Open => objects.push(HashSet::new()),
            KeyEvent::Close => {
                objects.pop();
            }
            KeyEvent::Key { start, end } => {
                let raw = &text[start..end];
                let inner = &raw[1..raw.len().saturating_sub(1).max(1)];
                let key: Cow<'_, str> = if inner.contains('\\') {
                    Cow::Owned(serde_json::from_str(raw).unwrap_or_else(|_| raw.to_string()))
                } else {
                    Cow::Borrowed(inner)
                };
                if let Some(keys) = objects.last_mut() {
                    if keys.contains(&key) {
                        let line = text[..start].matches('\n').count() + 1;
                        let column = start - text[..start].rfind('\n').map_or(0, |k| k + 1) + 1;
                        return Err(Error::new(
                            ErrorKind::Json,
                            format!("line {line}, column {column}"),
                            format!("the key {raw} appears twice in one object; a case must not be ambiguous"),
                        ));
                    }
                    keys.insert(key);
                }
            }
        }
        Ok(())
    })
}
