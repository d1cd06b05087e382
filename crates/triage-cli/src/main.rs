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
            // Bad usage: one line, exit status 2.
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "triage: {} (see `triage --help`)",
                first.trim_start_matches("error: ")
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
    match cli.command {
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
                eprintln!("triage probe: {message}");
                ExitCode::from(2)
            }
        },
    }
}
