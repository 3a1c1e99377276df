//! What one event delivery shares across its capabilities: who, which event,
//! until when, and the record of what the plugin did.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most log lines kept per delivery; later lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1_000;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;

/// Identity and deadline of one delivery (plugin × event).
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Plugin name.
    pub plugin: Arc<str>,
    /// Event id.
    pub event_id: Arc<str>,
    /// When the delivery's deadline expires.
    pub deadline: Instant,
    /// Where capabilities note what happened.
    pub record: Arc<Mutex<Record>>,
}

impl CallContext {
    /// A context with an empty record.
    pub fn new(plugin: &str, event_id: &str, deadline: Instant) -> Self {
        Self {
            plugin: plugin.into(),
            event_id: event_id.into(),
            deadline,
            record: Arc::default(),
        }
    }

    /// Time left before the deadline (zero when passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Add a log line, tagged and emitted through `tracing` too.
    pub fn log(&self, level: Level, source: LogSource, message: &str) {
        let message = truncate(message, MAX_LOG_LINE_BYTES);
        match level {
            Level::Trace => {
                tracing::trace!(plugin = %self.plugin, event = %self.event_id, source = source.as_str(), "{message}")
            }
            Level::Debug => {
                tracing::debug!(plugin = %self.plugin, event = %self.event_id, source = source.as_str(), "{message}")
            }
            Level::Info => {
                tracing::info!(plugin = %self.plugin, event = %self.event_id, source = source.as_str(), "{message}")
            }
            Level::Warn => {
                tracing::warn!(plugin = %self.plugin, event = %self.event_id, source = source.as_str(), "{message}")
            }
            Level::Error => {
                tracing::error!(plugin = %self.plugin, event = %self.event_id, source = source.as_str(), "{message}")
            }
        }
        let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if rec.logs.len() < MAX_LOG_LINES {
            rec.logs.push(LogLine {
                level,
                source,
                message: message.to_owned(),
            });
        } else {
            rec.dropped_logs += 1;
        }
    }

    /// Note a delivery made (or attempted) by a capability.
    pub fn delivered(&self, delivery: Delivery) {
        match &delivery.status {
            DeliveryStatus::Failed(e) => {
                tracing::warn!(plugin = %self.plugin, event = %self.event_id, capability = delivery.capability, target = %delivery.target, "delivery failed: {e}")
            }
            DeliveryStatus::Sent => {
                tracing::info!(plugin = %self.plugin, event = %self.event_id, capability = delivery.capability, target = %delivery.target, "delivered")
            }
            DeliveryStatus::Outbox(p) => {
                tracing::info!(plugin = %self.plugin, event = %self.event_id, capability = delivery.capability, target = %delivery.target, path = %p.display(), "written to outbox")
            }
        }
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deliveries
            .push(delivery);
    }

    /// Take the record out.
    pub fn take_record(&self) -> Record {
        std::mem::take(&mut *self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Log severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum LogSource {
    /// The `log` import.
    Log,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

impl LogSource {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: Level,
    pub source: LogSource,
    pub message: String,
}

/// What happened to one outgoing message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Accepted by the service.
    Sent,
    /// Written to the outbox at this path.
    Outbox(PathBuf),
    /// Not delivered.
    Failed(String),
}

/// One outgoing message (Teams post, email).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// `teams` or `email`.
    pub capability: &'static str,
    /// Channel name, or the recipients (never a URL or secret).
    pub target: String,
    pub status: DeliveryStatus,
    /// For outbox deliveries, the exact content written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Everything a delivery's capabilities noted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Record {
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    pub deliveries: Vec<Delivery>,
}
