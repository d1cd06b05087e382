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
#[command(
    name = "triage",
    version,
    about = "See who owns an outbound HTTP failure, and what to do next: `triage tour`, `triage probe URL`",
    long_about = "See who owns an outbound HTTP failure, and what to do next.

`triage tour` shows every failure class (DNS, connect, TLS, proxy, timeouts, rate
limits, quotas, gateways, servers) against an embedded loopback upstream: what came
back, who owns it, what the layer did. Nothing leaves the machine.

`triage probe URL` sends one request from here through the same layer and connectors
a service would use, and names the first point where the evidence changes, with an
escalation packet for any failure.",
    after_help = "Examples:\n  \
        triage tour\n  \
        triage probe https://api.example.com/v1/models -H 'Authorization: Bearer …'\n  \
        triage probe https://api.example.com/v1/models --json --proxy http://proxy:3128"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show every failure class against an embedded loopback upstream
    ///
    /// One request per failure class goes through the layer to an embedded loopback
    /// upstream; each row shows the evidence, the owner and the decision, as soon as
    /// it is done.
    #[command(verbatim_doc_comment)]
    Tour,
    /// Test the path to a URL from here and name where the evidence changes
    ///
    /// One request through the layer and its connectors, as a service would send it:
    /// DNS, connect, proxy, TLS and the answer, each timed, the first point where the
    /// evidence changes, and an escalation packet for any failure.
    #[command(after_help = PROBE_HELP, verbatim_doc_comment)]
    Probe(Box<probe::ProbeArgs>),
}

/// `triage probe --help`'s closing lines: examples and exit statuses.
const PROBE_HELP: &str = "Examples:
  triage probe https://api.openai.com/v1/models -H 'Authorization: Bearer sk-…'
  triage probe https://svc.internal:8443/health --cacert ca.pem --resolve svc.internal:8443:10.0.0.7
  triage probe https://api.example.com/v1/chat -X POST --data @body.json --profile openai --json
  HTTPS_PROXY=http://user:pass@proxy:3128 triage probe https://api.example.com/

Nothing the request carries (headers, query values, user info, proxy credentials) is printed back.

Exit status:
  0  every stage went through and the answer was a success
  1  a failure was diagnosed (the report and its packet say whose and what next)
  2  bad usage (one line on stderr)";

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
        Command::Tour => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match runtime.block_on(tour::run(&mut out, tour::Paint::detect())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("triage tour: {error}");
                    ExitCode::from(1)
                }
            }
        }
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
