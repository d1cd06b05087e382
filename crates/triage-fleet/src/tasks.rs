//! The fleet's two tasks: publishing queued windows, and listening for the
//! windows other replicas publish. Neither is on a call's path; both
//! reconnect with backoff and say when sharing degrades and when it is
//! back.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tower_triage::core::redact;
use tower_triage::{Inbox, SharedWindow};

use crate::TARGET;
use crate::codec::{decode_key, decode_message, encode};

/// Keys read at start at most.
const MAX_KEYS: usize = 1024;
/// One command's (or connection's) bound.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// Reconnection backoff.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an idle listener checks that its layer still exists.
const LIVENESS: Duration = Duration::from_secs(1);

/// What the tasks and the handles share.
pub(crate) struct State {
    pub(crate) client: redis::Client,
    pub(crate) prefix: String,
    pub(crate) degraded: AtomicBool,
    pub(crate) dropped: AtomicU64,
    /// Windows written to Redis.
    pub(crate) published: AtomicU64,
    /// Windows from Redis that a layer took.
    pub(crate) received: AtomicU64,
    /// Subscriptions that read the keys and are listening now.
    pub(crate) listening: AtomicUsize,
}

/// Counts a listening subscription while it lives.
struct Listening<'a>(&'a AtomicUsize);

impl<'a> Listening<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Listening(count)
    }
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    fn channel(&self) -> String {
        format!("{}windows", self.prefix)
    }

    /// Notes a failure (the WARN event once, when sharing degrades).
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            let password = self
                .client
                .get_connection_info()
                .redis_settings()
                .password();
            tracing::event!(
                target: TARGET,
                tracing::Level::WARN,
                triage.fleet.prefix = %self.prefix,
                triage.fleet.failed = what,
                triage.fleet.error = %printable_error(&error.to_string(), password),
                "fleet sharing degraded: local-only pacing until Redis answers again"
            );
        }
    }

    /// Notes a success (the INFO event once, when sharing is back).
    fn worked(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::event!(
                target: TARGET,
                tracing::Level::INFO,
                triage.fleet.prefix = %self.prefix,
                "fleet sharing restored"
            );
        }
    }

    async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        bounded(self.client.get_multiplexed_async_connection()).await
    }
}

/// The longest error text an event carries.
const MAX_ERROR: usize = 256;

/// An error's text as an event may carry it: the server's words are remote
/// input, so without the password (by exact value) or anything that looks
/// like a secret, control characters replaced, capped.
fn printable_error(text: &str, password: Option<&str>) -> String {
    let secrets: Vec<String> = password.into_iter().map(str::to_owned).collect();
    let text = redact::scrub_exact(text, &secrets);
    let text = redact::text(&text);
    redact::printable(&text, MAX_ERROR).into_owned()
}

/// `future`, or a timeout error after [`COMMAND_TIMEOUT`].
async fn bounded<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        ))),
    }
}

/// The next wait of a backoff that doubles from [`BACKOFF_MIN`] to
/// [`BACKOFF_MAX`].
pub(crate) fn next_backoff(wait: Duration) -> Duration {
    (wait * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// The publishing task: each queued window as a key with a TTL and a
/// message on the channel. Ends when every handle is dropped.
pub(crate) async fn publish(state: std::sync::Arc<State>, mut queue: mpsc::Receiver<SharedWindow>) {
    let mut connection = None;
    let mut wait = BACKOFF_MIN;
    while let Some(window) = queue.recv().await {
        // A window that reopened while Redis was away is not sent.
        while SystemTime::now() < window.until {
            let Some(encoded) = encode(&state.prefix, &window) else {
                break;
            };
            if connection.is_none() {
                match state.connect().await {
                    Ok(c) => connection = Some(c),
                    Err(e) => {
                        state.failed("connect", &e);
                        tokio::time::sleep(wait).await;
                        wait = next_backoff(wait);
                        continue;
                    }
                }
            }
            let Some(c) = connection.as_mut() else { break };
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&encoded.key)
                .arg(&encoded.value)
                .arg("PX")
                .arg(encoded.ttl_ms)
                .ignore()
                .cmd("PUBLISH")
                .arg(state.channel())
                .arg(&encoded.message)
                .ignore();
            match bounded(pipe.query_async::<()>(c)).await {
                Ok(()) => {
                    state.worked();
                    state.published.fetch_add(1, Ordering::Relaxed);
                    wait = BACKOFF_MIN;
                    break;
                }
                Err(e) => state.failed("publish", &e),
            }
            // A server that answers but refuses (full, read-only) is not
            // asked again at once: the same backoff as one that is down.
            connection = None;
            tokio::time::sleep(wait).await;
            wait = next_backoff(wait);
        }
    }
}

/// The listening task: the keys under the scope first, then the channel,
/// reconnecting with backoff. Ends once its layer is dropped.
pub(crate) async fn listen(state: std::sync::Arc<State>, inbox: Inbox) {
    let mut wait = BACKOFF_MIN;
    while inbox.is_live() {
        match listen_once(&state, &inbox).await {
            Ok(()) if !inbox.is_live() => return,
            Ok(()) => {
                state.failed("subscribe", &"the subscription ended");
                // It had worked: the backoff starts over.
                wait = BACKOFF_MIN;
            }
            Err(e) => state.failed("subscribe", &e),
        }
        tokio::time::sleep(wait).await;
        wait = next_backoff(wait);
    }
}

async fn listen_once(state: &State, inbox: &Inbox) -> redis::RedisResult<()> {
    let mut pubsub = bounded(state.client.get_async_pubsub()).await?;
    bounded(pubsub.subscribe(state.channel())).await?;
    // Subscribed first, then the keys: a window published in between is
    // not lost.
    let mut connection = state.connect().await?;
    read_keys(state, &mut connection, inbox).await?;
    drop(connection);
    state.worked();
    let _listening = Listening::new(&state.listening);
    let mut messages = pubsub.on_message();
    let mut tick = tokio::time::interval(LIVENESS);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return Ok(()) };
                if let Some(window) = decode_message(message.get_payload_bytes()) {
                    if inbox.receive(&window) {
                        state.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = tick.tick() => {
                if !inbox.is_live() {
                    return Ok(());
                }
            }
        }
    }
}

/// Reads the windows under the scope (at most [`MAX_KEYS`]).
async fn read_keys(
    state: &State,
    connection: &mut redis::aio::MultiplexedConnection,
    inbox: &Inbox,
) -> redis::RedisResult<()> {
    let pattern = format!("{}win:*", state.prefix);
    let mut cursor = 0u64;
    let mut seen = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = bounded(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(100)
                .query_async(connection),
        )
        .await?;
        for key in keys {
            if seen >= MAX_KEYS {
                return Ok(());
            }
            seen += 1;
            let value: Option<String> =
                bounded(redis::cmd("GET").arg(&key).query_async(connection)).await?;
            if let Some(window) = value.and_then(|v| decode_key(&state.prefix, &key, &v)) {
                if inbox.receive(&window) {
                    state.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_scrubbed_stripped_and_capped() {
        let text = "WRONGPASS for s3cretPassword9\r\n\u{1b}[31m".to_owned() + &"x".repeat(400);
        let shown = printable_error(&text, Some("s3cretPassword9"));
        assert!(!shown.contains("s3cretPassword9"), "{shown}");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.len() <= MAX_ERROR + '…'.len_utf8(), "{}", shown.len());
        assert!(shown.starts_with("WRONGPASS for [redacted]"), "{shown}");
    }

    #[test]
    fn backoff_doubles_within_its_bounds() {
        let mut wait = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            wait = next_backoff(wait);
            seen.push(wait);
        }
        assert_eq!(seen[0], BACKOFF_MIN);
        assert_eq!(seen[1], BACKOFF_MIN * 2);
        assert_eq!(*seen.last().unwrap(), BACKOFF_MAX);
    }
}
