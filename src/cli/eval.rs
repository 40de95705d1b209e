//! `lossref eval CASE.json|- [--output FILE.npz]`: the certified answer of one case (SPEC §3).

use crate::case::{parse_case_in, MAX_CASE_BYTES};
use crate::cli::progress::Spinner;
use crate::error::{Error, Result};
use crate::mp::certify::{CertifiedAnswer, Rounded};
use crate::npz;
use crate::reference::blocks::{
    certified_rounded, certified_streaming, streamed_shape, BLOCK_VALUES,
};
use crate::report::{answer_arrays, eval_json};
use serde_json::json;
use std::path::Path;

/// The most values `lossref eval` prints as JSON (an answer of 100 000 values is about 4 MB
/// of text); a larger answer goes to an archive with `--output FILE.npz`.
pub const MAX_PRINTED_VALUES: usize = 100_000;

/// Evaluates the case in `path` (or standard input for `-`) and returns the JSON text.
/// A case whose `inputs` name a `.npz` archive reads it relative to the case file's
/// directory (the current directory for standard input).
///
/// # Errors
/// Unreadable input, invalid JSON or case (naming the place), or a value that cannot be
/// certified below the precision cap.
pub fn run(path: &str, with_binary64: bool) -> Result<String> {
    let (loss, answer) = evaluate(path, Printing::Json)?;
    let json = eval_json(loss, &answer, with_binary64);
    Ok(serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()))
}

/// Where the answer goes: printed as JSON (bounded), or into an archive.
#[derive(Clone, Copy)]
enum Printing {
    Json,
    Archive { decimals: bool },
}

fn evaluate(
    path: &str,
    printing: Printing,
) -> Result<(crate::spec::LossId, CertifiedAnswer<Rounded>)> {
    let case = read_case(path, printing)?;
    let decimals = match printing {
        Printing::Json => true,
        Printing::Archive { decimals } => decimals,
    };
    certify(&case, decimals)
}

/// The case in `path`, refused before any evaluation if its answer is too large to print.
fn read_case(path: &str, printing: Printing) -> Result<crate::spec::Case> {
    let text = super::read_input(path, MAX_CASE_BYTES)?;
    let base = match Path::new(path).parent() {
        Some(dir) if path != "-" && !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let case = parse_case_in(&text, base)?;
    if let Printing::Json = printing {
        refuse_to_print_large(path, &case)?;
    }
    Ok(case)
}

/// The certified answer of `case`, kept as roundings (`decimals`: and decimal strings).
fn certify(
    case: &crate::spec::Case,
    decimals: bool,
) -> Result<(crate::spec::LossId, CertifiedAnswer<Rounded>)> {
    let spinner = Spinner::after_a_second(format!("certifying {}", case.loss().as_str()));
    let answer = certified_rounded(case, decimals);
    drop(spinner);
    Ok((case.loss(), answer?))
}

/// Refuses, before any evaluation, an answer of more than [`MAX_PRINTED_VALUES`] values
/// on standard output (its size is the fast path's, whose answer is shaped like the
/// reference's; a case the fast path refuses goes on to the reference's own error).
fn refuse_to_print_large(path: &str, case: &crate::spec::Case) -> Result<()> {
    let Ok(shape) = crate::fast::dispatch::evaluate::<f32>(case) else {
        return Ok(());
    };
    let values: usize = shape.sections().map(|(_, _, t)| t.values().len()).sum();
    if values <= MAX_PRINTED_VALUES {
        return Ok(());
    }
    Err(Error::invalid(
        path,
        format!(
            "the answer has {values} values, more than the {MAX_PRINTED_VALUES} that `lossref \
             eval` prints (36 digits each, about {} MB of text): write it to an archive with \
             --output FILE.npz",
            values * 40 / 1_000_000
        ),
    ))
}

/// Evaluates the case and writes its answer to the `.npz` at `output` instead of printing
/// it: `outputs/NAME` and `gradients/NAME` hold the binary64 roundings,
/// `binary32/outputs/NAME` and `binary32/gradients/NAME` the binary32 roundings (each
/// decided from the enclosure, not rounded twice), and with `decimals` also
/// `decimal/outputs/NAME` and `decimal/gradients/NAME` the decimal strings. Returns the JSON
/// that is still printed: the loss, the file and the certificate.
///
/// A case that streams over blocks of classes ([`certified_streaming`]: a normalized-margin
/// case whose N·C logits and C·D weight gradients exceed [`BLOCK_VALUES`]) writes its
/// weights gradient's binary64 roundings into the archive block by block as they are
/// certified, and holds only their binary32 roundings (and, with `decimals`, their decimal
/// strings) until the end: memory O((B + C)·D + B·block) at any C. Its arrays come in
/// another order (the streamed gradient first); their names and values are the same.
///
/// # Errors
/// As [`run`], and a file that cannot be written.
pub fn run_to_npz(path: &str, output: &str, decimals: bool) -> Result<String> {
    let case = read_case(path, Printing::Archive { decimals })?;
    let spinner = Spinner::after_a_second(format!("certifying {}", case.loss().as_str()));
    let streamed = stream_to_npz(&case, Path::new(output), decimals);
    drop(spinner);
    if streamed.is_err() {
        // a stream that failed (an undefined point, a value past the cap, the disk) leaves
        // no partial archive behind
        let _ = std::fs::remove_file(output);
    }
    let answer = match streamed? {
        Some(answer) => answer,
        None => {
            let (_, answer) = certify(&case, decimals)?;
            npz::write(
                Path::new(output),
                &answer_arrays(&answer, decimals),
                npz::Compression::Stored,
            )?;
            answer
        }
    };
    let json = json!({
        "loss": case.loss().as_str(),
        "output": output,
        "certificate": {
            "tier": answer.certificate.tier.as_str(),
            "precision_bits": answer.certificate.precision_bits,
        },
    });
    Ok(serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()))
}

/// [`run_to_npz`] for a case that streams; `Ok(None)` for one that does not (nothing
/// written), or that met an operand it cannot slice (the file begun is then rewritten whole
/// by the caller).
fn stream_to_npz(
    case: &crate::spec::Case,
    output: &Path,
    decimals: bool,
) -> Result<Option<CertifiedAnswer<Rounded>>> {
    let Some((name, _, rows, cols)) = streamed_shape(case, BLOCK_VALUES) else {
        return Ok(None);
    };
    let mut archive = npz::ArchiveWriter::create(output, npz::Compression::Stored)?;
    let mut binary32: Vec<f32> = Vec::with_capacity(rows.saturating_mul(cols));
    let mut text: Vec<String> = Vec::new();
    let mut entry = archive.float64(&format!("gradients/{name}"), &[rows, cols])?;
    let streamed = certified_streaming(case, decimals, BLOCK_VALUES, &mut |_, block| {
        for v in block {
            entry.push(v.f64)?;
            binary32.push(v.f32);
            if let Some(d) = v.decimal {
                text.push(d);
            }
        }
        Ok(())
    })?;
    let Some((answer, _)) = streamed else {
        // Not sliceable after all: the caller certifies it whole and rewrites the file.
        return Ok(None);
    };
    entry.finish()?;
    for (array_name, array) in answer_arrays(&answer, decimals) {
        archive.array(&array_name, &array)?;
    }
    archive.float32(
        &format!("binary32/gradients/{name}"),
        &[rows, cols],
        &binary32,
    )?;
    drop(binary32);
    if decimals && text.len() == rows * cols {
        let array = npz::Array {
            shape: vec![rows, cols],
            data: npz::Data::Text(text),
            was_f32: false,
        };
        archive.array(&format!("decimal/gradients/{name}"), &array)?;
    }
    archive.finish()?;
    Ok(Some(answer))
}
