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
    /// error, 3 when a value cannot be certified below the precision cap.
    Eval {
        /// The case file, or `-` for standard input.
        case: String,
        /// Also print every value's binary64 rounding in hexadecimal (key `binary64`).
        #[arg(long)]
        binary64: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval { case, binary64 } => cli::eval::run(&case, binary64),
    };
    match result {
        Ok(text) => println!("{text}"),
        Err(e) => {
            eprintln!("lossref: error: {e}");
            std::process::exit(cli::exit_code(&e));
        }
    }
}
