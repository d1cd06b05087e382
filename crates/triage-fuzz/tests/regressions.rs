//! Every kept input (the seeds, and `regressions/<target>/*` — what fuzzing
//! found once) passes its target's checks, and a short fuzz run from a fixed
//! seed finds nothing: the parsers and the classification hold for inputs
//! nobody wrote by hand.

use std::path::PathBuf;
use std::time::Duration;

use triage_fuzz::{TARGETS, check, fuzz, kept};

fn regressions() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

#[test]
fn kept_inputs_pass() {
    for target in TARGETS {
        let mut inputs: Vec<Vec<u8>> = target.seeds.iter().map(|s| s.to_vec()).collect();
        inputs.extend(kept(&regressions(), target.name));
        for input in inputs {
            if let Err(message) = check(target, &input) {
                panic!("{}: {message}\n  input {input:?}", target.name);
            }
        }
    }
}

#[test]
fn a_short_fuzz_run_finds_nothing() {
    for target in TARGETS {
        let extra = kept(&regressions(), target.name);
        let run = fuzz(target, &extra, 1, Duration::from_secs(60), 3_000, None);
        assert_eq!(run.executions, 3_000);
        if let Some((input, message)) = run.findings.first() {
            panic!("{}: {message}\n  input {input:?}", target.name);
        }
    }
}
