//! triage-fleet against a real `redis-server` (Debian's package), started
//! by the suite on 127.0.0.1: layers share a rate window through it, a
//! replica that starts later reads the open ones, a Redis that is down,
//! silent, full or killed never fails a call, AUTH and TLS work, and four
//! replica processes against one rate-limited upstream send nothing into a
//! window one of them learned.
//!
//! Runs when `TRIAGE_INTEROP=1` (`.ci/run` installs `redis-server`);
//! otherwise it prints one line saying it was skipped. Run it alone with
//! `TRIAGE_INTEROP=1 cargo test -p triage-fleet --test redis`, or one case
//! with a filter after `--`.

mod cases;
mod events;
mod replicas;
mod server;

use std::pin::Pin;
use std::time::Duration;

use triage_testkit::suite::Case;

macro_rules! case {
    ($path:path) => {
        (stringify!($path), || Box::pin($path()) as Pin<Box<_>>)
    };
}

const CASES: &[(&str, Case)] = &[
    case!(cases::a_window_one_layer_learns_holds_the_others_requests),
    case!(cases::a_replica_that_starts_later_reads_the_open_windows),
    case!(cases::a_quota_stop_one_replica_learns_refuses_the_others_requests),
    case!(cases::redis_down_never_fails_a_call),
    case!(cases::a_silent_redis_never_delays_a_call),
    case!(cases::a_full_redis_never_fails_a_call),
    case!(cases::redis_killed_mid_run_then_restarted_sharing_resumes),
    case!(cases::auth_is_required_and_honoured),
    case!(cases::tls_with_a_private_ca),
    case!(cases::a_dropped_layer_stops_listening),
    case!(replicas::four_replica_processes_send_nothing_into_a_shared_window),
];

/// How long one case may take.
const CASE_LIMIT: Duration = Duration::from_secs(90);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == replicas::CHILD) {
        std::process::exit(replicas::child(&args[at + 1..]));
    }
    if std::env::var("TRIAGE_INTEROP").as_deref() != Ok("1") {
        println!(
            "redis suite skipped: set TRIAGE_INTEROP=1 to run triage-fleet against redis-server \
             (.ci/run installs it from Debian's packages)"
        );
        return;
    }
    if server::find().is_none() {
        eprintln!(
            "redis suite: TRIAGE_INTEROP=1 but redis-server is not installed (Debian: redis-server)"
        );
        std::process::exit(1);
    }
    events::install();
    let filter = args.iter().find(|a| !a.starts_with('-'));
    if !triage_testkit::suite::run("redis", CASES, filter.map(String::as_str), CASE_LIMIT) {
        std::process::exit(1);
    }
}
