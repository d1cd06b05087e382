//! `triage-fuzz`: runs the fuzz targets for a fixed time and reports
//! executions and findings; each finding is written to
//! `regressions/<target>/` (kept inputs run as tests from then on) and the
//! run fails.
//!
//! ```sh
//! cargo run --release -p triage-fuzz -- --seconds 60              # every target, 60 s each
//! cargo run --release -p triage-fuzz -- --target classify --seconds 600
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use triage_fuzz::{TARGETS, Target, fuzz, target};

fn usage() -> ! {
    eprintln!(
        "usage: triage-fuzz [--target NAME] [--seconds N] [--seed N]\ntargets: {}",
        TARGETS
            .iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let mut seconds = 10u64;
    let mut seed = 0x7472_6961_6765u64;
    let mut chosen: Vec<&'static Target> = TARGETS.iter().collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--seconds" => seconds = value().parse().unwrap_or_else(|_| usage()),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--target" => {
                let name = value();
                chosen = vec![target(&name).unwrap_or_else(|| usage())];
            }
            _ => usage(),
        }
    }
    let regressions = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    // Findings are reported below, once each: keep panics quiet meanwhile.
    std::panic::set_hook(Box::new(|_| {}));
    let mut found = 0;
    println!("| target | seconds | executions | per second | findings |");
    println!("|---|---|---|---|---|");
    for target in chosen {
        let kept = triage_fuzz::kept(&regressions, target.name);
        let started = Instant::now();
        let stall = Some((Duration::from_secs(5), regressions.clone()));
        let run = fuzz(
            target,
            &kept,
            seed,
            Duration::from_secs(seconds),
            u64::MAX,
            stall,
        );
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "| {} | {elapsed:.0} | {} | {:.0} | {} |",
            target.name,
            run.executions,
            run.executions as f64 / elapsed,
            run.findings.len()
        );
        for (i, (input, message)) in run.findings.iter().enumerate() {
            let dir = regressions.join(target.name);
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("finding-{seed}-{i}.bin"));
            let _ = std::fs::write(&path, input);
            let shown: String = format!("{input:?}").chars().take(400).collect();
            eprintln!(
                "{}: {message}\n  input {shown}\n  kept in {}",
                target.name,
                path.display()
            );
            found += 1;
        }
    }
    if found > 0 {
        std::process::exit(1);
    }
}
