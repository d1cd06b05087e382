//! A runner for suites against real software (`harness = false` test
//! targets): each case an async function that returns `Ok`, an `Err` with
//! the reason, or an `Err` starting with [`SKIP`] when the machine cannot
//! run it; one line per case, one summary line.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A case: an async function run on the suite's runtime.
pub type Case = fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How a case says the machine cannot run it (and why): not a failure.
pub const SKIP: &str = "skipped: ";

/// Runs each of `cases` whose name contains `filter` (all without one), in
/// order, each within `limit`, on a two-thread tokio runtime. Prints
/// `{label} {name} ... ok (ms)`, `... skipped: why` or `... FAILED` and the
/// reason, then `{label}: N passed, N failed, ...`. Returns whether none
/// failed.
pub fn run(label: &str, cases: &[(&str, Case)], filter: Option<&str>, limit: Duration) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let (mut ran, mut skipped, mut failed) = (0usize, 0usize, 0usize);
    for (name, case) in cases {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        let t = Instant::now();
        let result = runtime.block_on(async {
            tokio::time::timeout(limit, case())
                .await
                .unwrap_or_else(|_| Err(format!("did not finish within {limit:?}")))
        });
        match result {
            Ok(()) => println!("{label} {name} ... ok ({} ms)", t.elapsed().as_millis()),
            Err(why) if why.starts_with(SKIP) => {
                println!("{label} {name} ... {why}");
                skipped += 1;
            }
            Err(why) => {
                println!("{label} {name} ... FAILED\n{why}\n");
                failed += 1;
            }
        }
    }
    let skipped_note = if skipped > 0 {
        format!(", {skipped} skipped (the machine cannot run them)")
    } else {
        String::new()
    };
    println!(
        "\n{label}: {} passed, {failed} failed{skipped_note}, in {:.1} s",
        ran - failed - skipped,
        started.elapsed().as_secs_f64()
    );
    failed == 0
}

/// Where `program` is: on the `PATH`, or in `/usr/bin`, `/usr/sbin` or
/// `/sbin` (where Debian puts servers such as nginx), if anywhere.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
