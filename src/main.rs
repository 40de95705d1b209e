//! The `lossref` command.

use clap::{Parser, Subcommand};
use lossref::cli;

/// lossref: the exact answer for softmax-family classification losses.
#[derive(Parser)]
#[command(name = "lossref", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate one case (SPEC §3) with certified precision and print its JSON answer.
    ///
    /// Exit status: 0 on success, 1 for an unreadable or invalid case, 2 for a usage
    /// error, 3 when a value cannot be certified below the precision cap, 141 when the
    /// reader of the answer closes the pipe early (as a Unix tool that SIGPIPE ends).
    Eval {
        /// The case file, or `-` for standard input.
        case: String,
        /// Also print every value's binary64 rounding in hexadecimal (key `binary64`).
        #[arg(long)]
        binary64: bool,
        /// Write the answer to this .npz instead of printing it: `outputs/NAME` and
        /// `gradients/NAME` (binary64), `binary32/…` (binary32); the certificate is printed.
        #[arg(long, value_name = "FILE.npz")]
        output: Option<String>,
        /// With --output, also store the decimal strings (`decimal/…`).
        #[arg(long, requires = "output")]
        decimals: bool,
        /// The most array data a `.npz` input may hold, in MiB (default 64, as a JSON case
        /// file; the certified evaluation takes many times that in memory).
        #[arg(long, value_name = "N", default_value_t = 64)]
        max_input_mib: u64,
    },
    /// Time the fused forward + backward of a normalized-margin loss against the three plain
    /// GEMMs of the same shapes (X·Wᵀ, G·W, Gᵀ·X), in the same run, and print JSON with both
    /// medians and their ratio.
    Bench {
        /// normface, cosface, amsoftmax, arcface, combined, curricularface, adaface, magface or
        /// adacos (and softmax_ce with --reference).
        loss: String,
        /// Batch size B.
        #[arg(long)]
        batch: usize,
        /// Feature dimension D (not used by softmax_ce).
        #[arg(long, default_value_t = 0)]
        dim: usize,
        /// Number of classes C.
        #[arg(long)]
        classes: usize,
        /// f32 or f64.
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// Threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// SPEC §3 parameters as a JSON object, e.g. '{"margin": 0.3}' (SPEC defaults otherwise).
        #[arg(long, default_value = "")]
        params: String,
        /// The most logits (rows × classes) the fused path holds at once.
        #[arg(long, default_value_t = lossref::family::normalized::fast::TILE_LOGITS)]
        tile_logits: usize,
        /// Untimed rounds before measuring.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed rounds; the medians are reported.
        #[arg(long, default_value_t = 9)]
        repeats: usize,
        /// Seed of the generated inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The best row kernels to use: avx512, avx2 or portable (the same bits; to measure
        /// a machine without AVX-512 or AVX2 on one that has it). The best the CPU has by
        /// default.
        #[arg(long, default_value = "avx512")]
        kernels: String,
        /// Time the certified reference (loss and both gradients, as `lossref eval`) once,
        /// and the fast f64 forward + backward on the same inputs in the same run; print
        /// both and their ratio.
        #[arg(long)]
        reference: bool,
    },
    /// Evaluate a theorem bound of SPEC §2, certified to any number of digits, and print JSON
    /// (or, with --table, a sweep over the number of classes).
    ///
    /// normface (T1, needs --scale), normface-ceiling (T2), cosface-scale (T3, needs
    /// --posterior), adacos-scale. Numbers are read as the exact decimals typed. Exit status:
    /// 0 on success, 1 for an invalid argument, 2 for a usage error, 3 when a value cannot be
    /// certified below the precision cap.
    Bound(cli::bound::Request),
    /// The conformance corpus (SPEC §4): build it (deterministically, in parallel, with
    /// --shard K/N for a split build), verify it against a fresh build, merge a split
    /// build's manifests, or export the corpus this binary embeds into DIR.
    ///
    /// Exit status: 0 on success, 1 when verify finds a difference or an action fails.
    Corpus(cli::corpus::Request),
    /// Judge an implementation's results (JSON or .npz, SPEC §4) against the conformance
    /// corpus: a verdict per case, a summary table, diagnoses of failures, and optionally JSON
    /// and JUnit reports.
    ///
    /// Exit status: 0 when every case passes, 1 when one fails, 2 for bad input or usage.
    Check(cli::check::CheckRequest),
    /// Run lossref's own fast f32/f64 paths over the corpus through the same judge and print
    /// the table per loss, output and dtype.
    ///
    /// Exit status: 0 when every case passes, 1 when one fails, 2 for bad input.
    Report(cli::check::ReportRequest),
}

/// Prints a judgement and exits 1 when it failed; its input errors exit 2.
fn judged(result: lossref::error::Result<(String, bool)>) -> lossref::error::Result<String> {
    match result {
        Ok((text, true)) => Ok(text),
        Ok((text, false)) => {
            print_answer(&text);
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("lossref: error: {e}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval {
            case,
            binary64,
            output,
            decimals,
            max_input_mib,
        } => {
            lossref::npz::set_input_limit(max_input_mib.saturating_mul(1 << 20));
            match output {
                Some(file) => cli::eval::run_to_npz(&case, &file, decimals),
                None => cli::eval::run(&case, binary64),
            }
        }
        Command::Bench {
            loss,
            batch,
            dim,
            classes,
            dtype,
            threads,
            params,
            tile_logits,
            warmup,
            repeats,
            seed,
            kernels,
            reference,
        } => cli::bench::run(&cli::bench::Request {
            loss,
            params,
            batch,
            dim,
            classes,
            dtype,
            threads,
            tile_logits,
            warmup,
            repeats,
            seed,
            kernels,
            reference,
        }),
        Command::Bound(request) => cli::bound::run(&request),
        Command::Corpus(request) => cli::corpus::run(&request),
        Command::Check(request) => judged(cli::check::run_check(&request)),
        Command::Report(request) => judged(cli::check::run_report(&request)),
    };
    match result {
        Ok(text) if text.is_empty() => {}
        Ok(text) => print_answer(&text),
        Err(e) => {
            eprintln!("lossref: error: {e}");
            std::process::exit(cli::exit_code(&e));
        }
    }
}

/// Prints `text` and a newline to standard output. A reader that closed the pipe early
/// (`lossref eval CASE | head`) ends the process quietly with status 141, as a Unix tool
/// killed by SIGPIPE does, instead of a panic; any other write error is reported, status 1.
fn print_answer(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("lossref: error: standard output: {e}");
        std::process::exit(1);
    }
}
