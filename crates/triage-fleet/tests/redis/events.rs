//! The fleet's events, kept: a minimal `tracing` subscriber (the suite's
//! global one) that records the level and message of every event whose
//! target is `triage::fleet`.

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The events seen so far: level and message.
pub(crate) static SEEN: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

/// Installs the recorder as the global subscriber.
pub(crate) fn install() {
    let _ = tracing::subscriber::set_global_default(Recorder);
}

/// Whether an event at `level` whose message contains `text` was seen.
pub(crate) fn seen(level: Level, text: &str) -> bool {
    SEEN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .any(|(l, m)| *l == level && m.contains(text))
}

struct Recorder;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == triage_fleet::TARGET
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        SEEN.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((*event.metadata().level(), message.0));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
