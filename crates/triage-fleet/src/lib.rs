//! Shares what [`tower-triage`](tower_triage) learns across replicas,
//! through Redis or Valkey: the rate windows it paces by, and its quota
//! stops.
//!
//! Tens or hundreds of replicas call one provider account. Without
//! sharing, each learns a closed rate window (a 429 that asks to wait, an
//! answer that says `remaining: 0`) on its own, and every other replica
//! still sends into it. With a [`Fleet`] given to each replica's layer
//! ([`TriageLayer::share`](tower_triage::TriageLayer::share)), a window one
//! replica learns holds the others' requests until its reset, and a quota
//! one replica finds used up
//! ([`TriageLayer::quota_stops`](tower_triage::TriageLayer::quota_stops))
//! refuses the others' requests unsent.
//!
//! # What a call pays
//!
//! Nothing on the network: a layer's lookups read its own state, which a
//! background task keeps current from a Redis channel. Publishing is
//! queued (bounded, 1,024 windows) for another task; a full queue drops.
//! Redis down, slow or full: calls go on with local-only pacing, without
//! waiting at all; the tasks reconnect with backoff (100 ms doubling to
//! 5 s, each command bounded by 500 ms), and a WARN event says when
//! sharing is degraded, an INFO event when it is back (target
//! `triage::fleet`; [`Fleet::is_degraded`] says it too).
//!
//! # Key layout
//!
//! Everything lives under `triage:{scope}:`, where the scope is a name you
//! choose (a service, an environment, an account: never a credential), or,
//! if you opt in, [`keyed_scope`]: a keyed hash of the credential, so that
//! replicas share per account without the credential reaching Redis:
//!
//! | key or channel | value | expires |
//! |---|---|---|
//! | `triage:{scope}:win:{route}:{bucket}` | `{until_ms}\|{profile}` | when the window reopens (a `PX` TTL) |
//! | channel `triage:{scope}:windows` | `{route}\t{bucket}\t{until_ms}\t{profile}` | — |
//!
//! `route` is scheme, host and port (`https://api.openai.com:443`),
//! `bucket` `requests`, `tokens`, `route`, `quota.billing`,
//! `quota.spend_limit` or `quota.period`, `until_ms` the reopening time in
//! milliseconds since the Unix epoch, `profile` the provider profile's
//! name. Every key has a TTL, so nothing grows for ever. A replica that
//! starts subscribes, then reads the keys under its scope (at most 1,024).
//! What comes back from Redis is checked like any remote input: bounded
//! lengths, no control characters, a known bucket, or it is dropped.
//!
//! Reset times travel as wall-clock times, so that every replica waits for
//! the same instant: keep the replicas' clocks synchronised (NTP); a clock
//! that is off by a second holds its requests a second too long or too
//! short. Windows that reopen later than the receiving layer's cap on
//! honoured waits are ignored, so a clock far off cannot hold a route for
//! long.
//!
//! # Security
//!
//! `rediss://` URLs speak TLS (rustls, the ring provider, the system's
//! roots; [`Fleet::with_client`] for a private CA), and a user and
//! password in the URL authenticate (`rediss://user:pass@host:6380/0`).
//! The URL is never printed, in errors or in `Debug`.
//!
//! What comes through Redis is trusted as far as the layer's own limits
//! go, no further: a window is held at most the layer's cap on honoured
//! waits (120 s by default), a quota stop at most the layer's own stop
//! length, and nothing else a message says is acted on. Still, whoever can
//! publish on the scope's channel can hold or stop your calls within those
//! limits: give the replicas a Redis user of their own (ACL on the
//! `triage:{scope}:` keys and channel), with TLS where the network is
//! shared.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), triage_fleet::FleetError> {
//! use std::time::Duration;
//! use tower_triage::TriageLayer;
//! use triage_fleet::Fleet;
//!
//! let fleet = Fleet::new("redis://127.0.0.1:6379/", "payments-prod")?;
//! let layer = TriageLayer::new()
//!     .quota_stops(Some(Duration::from_secs(60)))
//!     // Last: what comes from other replicas is taken as the layer says.
//!     .share(fleet);
//! # let _ = layer;
//! # Ok(()) }
//! ```

mod codec;
mod tasks;

/// The Redis client crate this one is built on (for [`Fleet::with_client`]).
pub use redis;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tower_triage::{Inbox, Share, SharedWindow};

use tasks::State;

/// The tracing target of the fleet's events.
pub const TARGET: &str = "triage::fleet";

/// Windows queued for publishing at most; more are dropped.
const QUEUE: usize = 1024;

/// A fleet that could not be set up.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL is not a Redis URL (`redis://`, `rediss://`, `unix://`).
    /// The URL itself is not repeated: it may carry a password.
    #[error("not a Redis URL: redis://, rediss:// or unix://, with host, port and database")]
    Url,
    /// The scope is empty, too long, or has characters other than ASCII
    /// letters, digits, `.`, `_` and `-`.
    #[error("the scope must be 1 to 64 ASCII letters, digits, '.', '_' or '-'")]
    Scope,
    /// The key of [`keyed_scope`] is shorter than 16 bytes.
    #[error("the key of a keyed scope must be at least 16 bytes (32 random bytes are best)")]
    ShortKey,
    /// No tokio runtime to run the fleet's tasks on.
    #[error("triage-fleet needs a tokio runtime: create the Fleet inside one")]
    NoRuntime,
}

/// A scope derived from a credential, for replicas that share what one
/// account's answers say and nothing of another's: `{name}.` and a keyed
/// hash of `credential` (HMAC-SHA-256 under `key`, its first 16 bytes in
/// hex). The credential itself never reaches Redis, and without `key` (a
/// secret of at least 16 bytes, the same on every replica, not the
/// credential) a reader of Redis cannot tell which credential a scope
/// stands for, nor test a guess. Opt-in: a scope you name
/// ([`Fleet::new`]) needs no key.
///
/// ```
/// let key = [7u8; 32]; // from your secret store, the same on every replica
/// let scope = triage_fleet::keyed_scope("openai", &key, b"sk-live-...")?;
/// assert!(scope.starts_with("openai.") && !scope.contains("sk-live"));
/// assert_eq!(scope.len(), "openai.".len() + 32);
/// # Ok::<(), triage_fleet::FleetError>(())
/// ```
pub fn keyed_scope(name: &str, key: &[u8], credential: &[u8]) -> Result<String, FleetError> {
    if key.len() < 16 {
        return Err(FleetError::ShortKey);
    }
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        credential,
    );
    let hex: String = tag.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let scope = format!("{name}.{hex}");
    if !valid_scope(&scope) {
        return Err(FleetError::Scope);
    }
    Ok(scope)
}

/// 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
fn valid_scope(scope: &str) -> bool {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    !scope.is_empty() && scope.len() <= 64 && scope.bytes().all(valid)
}

/// A [`Share`] over Redis or Valkey; see the [crate docs](crate). Clones
/// share one publishing queue and task; each layer given one listens on
/// its own subscription. The tasks end when the handles and layers are
/// dropped.
#[derive(Clone)]
pub struct Fleet {
    state: Arc<State>,
    queue: mpsc::Sender<SharedWindow>,
    // The queue's receiving end, until the first layer attaches.
    pending: Arc<Mutex<Option<mpsc::Receiver<SharedWindow>>>>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Fleet")
            .field("prefix", &self.state.prefix)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet over the Redis (or Valkey) at `url`, under `scope`. Nothing
    /// is sent until a layer is given it; a server that is down now is
    /// tried again in the background. Must be called inside a tokio
    /// runtime.
    ///
    /// The scope names what the replicas share: a service, an environment,
    /// an account. It is part of every key, so it must never be a
    /// credential.
    pub fn new(url: &str, scope: &str) -> Result<Fleet, FleetError> {
        let client = redis::Client::open(url).map_err(|_| FleetError::Url)?;
        Fleet::with_client(client, scope)
    }

    /// A fleet over `client`, under `scope`: for a `rediss://` server whose
    /// certificate a private CA signed
    /// ([`redis::Client::build_with_tls`]), or any other set-up of the
    /// client's own.
    pub fn with_client(client: redis::Client, scope: &str) -> Result<Fleet, FleetError> {
        if !valid_scope(scope) {
            return Err(FleetError::Scope);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FleetError::NoRuntime)?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        Ok(Fleet {
            state: Arc::new(State {
                client,
                prefix: format!("triage:{scope}:"),
                degraded: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                published: AtomicU64::new(0),
                received: AtomicU64::new(0),
                listening: AtomicUsize::new(0),
            }),
            queue,
            pending: Arc::new(Mutex::new(Some(receiver))),
            runtime,
        })
    }

    /// Whether sharing is degraded now (the last command or subscription
    /// failed; calls go on with local-only pacing).
    pub fn is_degraded(&self) -> bool {
        self.state.degraded.load(Ordering::Relaxed)
    }

    /// Whether a layer given this fleet is listening now: subscribed to
    /// the channel, with the windows open under the scope read.
    pub fn is_listening(&self) -> bool {
        self.state.listening.load(Ordering::Acquire) > 0
    }

    /// Windows dropped because the publishing queue was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// What this fleet (and its clones) did so far, for a health endpoint
    /// or a metrics exporter.
    pub fn stats(&self) -> FleetStats {
        FleetStats {
            published: self.state.published.load(Ordering::Relaxed),
            received: self.state.received.load(Ordering::Relaxed),
            dropped: self.dropped(),
            degraded: self.is_degraded(),
            listening: self.is_listening(),
        }
    }
}

/// What a [`Fleet`] did so far ([`Fleet::stats`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetStats {
    /// Windows (and quota stops) written to Redis.
    pub published: u64,
    /// Windows from other replicas (or read at start) that a layer took.
    pub received: u64,
    /// Windows dropped because the publishing queue was full.
    pub dropped: u64,
    /// Whether sharing is degraded now ([`Fleet::is_degraded`]).
    pub degraded: bool,
    /// Whether a layer is listening now ([`Fleet::is_listening`]).
    pub listening: bool,
}

impl Share for Fleet {
    fn publish(&self, window: &SharedWindow) {
        if self.queue.try_send(window.clone()).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn attach(&self, inbox: Inbox) {
        let receiver = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(receiver) = receiver {
            self.runtime
                .spawn(tasks::publish(Arc::clone(&self.state), receiver));
        }
        self.runtime
            .spawn(tasks::listen(Arc::clone(&self.state), inbox));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scopes_and_urls_are_checked() {
        assert!(matches!(
            Fleet::new("redis://127.0.0.1:1/", ""),
            Err(FleetError::Scope)
        ));
        assert!(matches!(
            Fleet::new("redis://127.0.0.1:1/", "a b"),
            Err(FleetError::Scope)
        ));
        let error = Fleet::new("http://user:secret-pass@nope/", "prod").unwrap_err();
        assert!(matches!(error, FleetError::Url));
        assert!(!error.to_string().contains("secret-pass"), "{error}");
        let fleet = Fleet::new("redis://user:secret-pass@127.0.0.1:1/", "prod").unwrap();
        assert!(!format!("{fleet:?}").contains("secret-pass"));
    }

    #[test]
    fn keyed_scopes_hide_the_credential_and_depend_on_the_key() {
        let key = [1u8; 32];
        let a = keyed_scope("openai", &key, b"sk-proj-abc").unwrap();
        assert!(a.starts_with("openai.") && !a.contains("abc"), "{a}");
        assert_eq!(
            a,
            keyed_scope("openai", &key, b"sk-proj-abc").unwrap(),
            "stable"
        );
        assert_ne!(a, keyed_scope("openai", &key, b"sk-proj-abd").unwrap());
        assert_ne!(
            a,
            keyed_scope("openai", &[2u8; 32], b"sk-proj-abc").unwrap()
        );
        assert!(matches!(
            keyed_scope("openai", b"short", b"sk"),
            Err(FleetError::ShortKey)
        ));
        assert!(matches!(
            keyed_scope("bad name", &key, b"sk"),
            Err(FleetError::Scope)
        ));
    }

    #[tokio::test]
    async fn publishing_never_waits_and_a_full_queue_drops() {
        // No layer attached: nothing drains the queue.
        let fleet = Fleet::new("redis://127.0.0.1:1/", "prod").unwrap();
        let window = SharedWindow {
            route: "https://api.test:443".into(),
            profile: "generic".into(),
            bucket: tower_triage::RateBucket::Route,
            until: std::time::SystemTime::now() + std::time::Duration::from_secs(30),
        };
        for _ in 0..QUEUE + 100 {
            fleet.publish(&window);
        }
        assert_eq!(fleet.dropped(), 100);
    }

    #[test]
    fn a_fleet_needs_a_runtime() {
        assert!(matches!(
            Fleet::new("redis://127.0.0.1:1/", "prod"),
            Err(FleetError::NoRuntime)
        ));
    }
}
