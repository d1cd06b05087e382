//! `triage`: see who owns an outbound HTTP failure.
//!
//! - `triage tour` sends one request per failure class through the triage
//!   layer to an embedded loopback upstream and prints what each one showed,
//!   who owns it, and what the layer did.
//! - `triage probe URL` tests the path to a URL stage by stage and names the
//!   first point where the evidence changes.
#![forbid(unsafe_code)]

mod probe;
mod tour;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tower_triage::core::redact::printable;

/// See who owns an outbound HTTP failure, and what to do next.
#[derive(Debug, Parser)]
#[command(name = "triage", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send one request per failure class to an embedded loopback upstream
    /// and print the evidence, the owner and the decision of each.
    Tour,
    /// Test the path to a URL from here, stage by stage (DNS, connect,
    /// proxy, TLS, HTTP), and name the first point where the evidence changes.
    Probe(Box<probe::ProbeArgs>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // Bad usage: one line, exit status 2. clap's first paragraph
            // (which can go on over indented lines, e.g. the missing `<URL>`),
            // joined, without a character that would break the line.
            let text = error.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = if first.is_empty() {
                "invalid arguments".to_owned()
            } else {
                first.join(" ")
            };
            eprintln!(
                "triage: {} (see `triage --help`)",
                printable(first.trim_start_matches("error: "), 300)
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("triage: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let code = match cli.command {
        Command::Tour => match runtime.block_on(tour::run()) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("triage tour: {error}");
                ExitCode::from(1)
            }
        },
        Command::Probe(args) => match runtime.block_on(probe::run(&args)) {
            Ok((text, ok)) => {
                print!("{text}");
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(probe::Usage(message)) => {
                eprintln!("triage probe: {}", printable(&message, 300));
                ExitCode::from(2)
            }
        },
    };
    // The answer is printed: do not wait for work that outlived its
    // timeout (a system lookup that a silent resolver keeps blocking runs
    // on in a blocking thread), so the process ends within the bound it
    // printed.
    runtime.shutdown_background();
    code
}
