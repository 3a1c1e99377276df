//! What one event delivery shares across its capabilities: who, which event,
//! until when, and the record of what the plugin did.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most log lines kept per delivery; later lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1_000;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Log lines per delivery also written to the host's own log; the rest are
/// kept in the record (up to [`MAX_LOG_LINES`]) and counted in one line.
pub const MAX_HOST_LOG_LINES: usize = 100;

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
    /// The plugin's budget of lines in the host's own log, across events.
    pub host_log: Option<Arc<HostLogBudget>>,
    /// The sent ledger, when deliveries are journaled (`triggerfish run`).
    pub ledger: Option<crate::ledger::Ledger>,
    /// Unique to this attempt: tells a write repeated by a later attempt of
    /// the same run from a second write by this one.
    pub attempt: Arc<str>,
    /// The journal's run this attempt belongs to, when there is one.
    pub run: Option<i64>,
}

/// A fresh attempt token: process, time and a counter.
fn attempt_token() -> Arc<str> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}-{n}", std::process::id()).into()
}

/// Lines a plugin may write to the host's log per minute, across events.
pub const HOST_LOG_LINES_PER_MINUTE: u32 = 600;

/// One plugin's budget of host-log lines (GCRA, bursting up to a minute's
/// worth); lines over it are counted and reported in one line per delivery.
pub struct HostLogBudget {
    gcra: governor::DefaultDirectRateLimiter,
    suppressed: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HostLogBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLogBudget").finish_non_exhaustive()
    }
}

impl Default for HostLogBudget {
    fn default() -> Self {
        let per_minute = std::num::NonZeroU32::new(HOST_LOG_LINES_PER_MINUTE)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            gcra: governor::RateLimiter::direct(governor::Quota::per_minute(per_minute)),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl HostLogBudget {
    /// May one more line go to the host's log? Counts it when not.
    fn admit(&self) -> bool {
        let ok = self.gcra.check().is_ok();
        if !ok {
            self.suppressed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        ok
    }

    /// Lines refused since the last call.
    fn take_suppressed(&self) -> u64 {
        self.suppressed
            .swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

impl CallContext {
    /// A context with an empty record.
    pub fn new(plugin: &str, event_id: &str, deadline: Instant) -> Self {
        Self {
            plugin: plugin.into(),
            event_id: event_id.into(),
            deadline,
            record: Arc::default(),
            host_log: None,
            ledger: None,
            attempt: attempt_token(),
            run: None,
        }
    }

    /// Keep a status report; `false` (and not kept) when the attempt has
    /// its maximum.
    pub fn report(&self, report: StatusReport) -> bool {
        let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if rec.reports.len() >= crate::caps::status::MAX_STATUS_REPORTS {
            return false;
        }
        tracing::info!(plugin = %self.plugin, event = %self.event_id, level = report.level, "status report: {}", report.message);
        rec.reports.push(report);
        true
    }

    /// Note a write to a writable entity.
    pub fn wrote(&self, write: WriteNote) {
        tracing::info!(plugin = %self.plugin, event = %self.event_id, entity = %write.entity, key = %write.key, op = write.op, repeated = write.repeated, "entity write");
        let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        if rec.writes.len() < MAX_WRITE_NOTES {
            rec.writes.push(write);
        } else {
            rec.dropped_writes += 1;
        }
    }

    /// Time left before the deadline (zero when passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Add a log line, tagged, as one line (control characters escaped),
    /// and emit the first [`MAX_HOST_LOG_LINES`] through `tracing` too.
    pub fn log(&self, level: Level, source: LogSource, message: &str) {
        let message = one_line(truncate(message, MAX_LOG_LINE_BYTES));
        let traced = {
            let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            let seen = rec.logs.len() + rec.dropped_logs;
            if rec.logs.len() < MAX_LOG_LINES {
                rec.logs.push(LogLine {
                    level,
                    source,
                    message: message.clone(),
                });
            } else {
                rec.dropped_logs += 1;
            }
            seen < MAX_HOST_LOG_LINES
        };
        if !traced || !self.host_log.as_ref().is_none_or(|b| b.admit()) {
            return;
        }
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
            DeliveryStatus::AlreadySent(r) => {
                tracing::info!(plugin = %self.plugin, event = %self.event_id, capability = delivery.capability, target = %delivery.target, "not sent again; an earlier attempt did: {r}")
            }
        }
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .deliveries
            .push(delivery);
    }

    /// Take the record out, saying in the host's log how many lines it did
    /// not show there.
    pub fn take_record(&self) -> Record {
        let rec = std::mem::take(&mut *self.record.lock().unwrap_or_else(PoisonError::into_inner));
        let total = rec.logs.len() + rec.dropped_logs;
        if total > MAX_HOST_LOG_LINES {
            tracing::warn!(plugin = %self.plugin, event = %self.event_id, "{} more log lines of this delivery not shown in the host log (dropped {})", total - MAX_HOST_LOG_LINES, rec.dropped_logs);
        }
        let suppressed = self.host_log.as_ref().map_or(0, |b| b.take_suppressed());
        if suppressed > 0 {
            tracing::warn!(plugin = %self.plugin, event = %self.event_id, "{suppressed} log lines of this plugin not shown in the host log: over its {HOST_LOG_LINES_PER_MINUTE} lines a minute");
        }
        rec
    }
}

/// `s` on one line: newlines and other control characters escaped, so a
/// guest cannot forge a line of the host's log or drive a terminal.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary (shared with the data layer).
pub use triggerfish_data::text::truncate;

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
    /// Not sent again: an earlier attempt of this run sent it (the ledger's record).
    #[serde(rename = "already-sent")]
    AlreadySent(String),
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

/// A status report (`status.report`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    /// `info`, `success`, `warning` or `error`.
    pub level: &'static str,
    pub message: String,
    /// Compact JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    pub at_ms: i64,
}

/// Most writes one delivery's record lists (the store logs them all).
pub const MAX_WRITE_NOTES: usize = 1_000;

/// One write to a writable entity, as the record notes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteNote {
    pub entity: String,
    /// `create` or `update`.
    pub op: &'static str,
    pub key: String,
    /// An earlier attempt of the run made it; nothing was written now.
    pub repeated: bool,
}

/// Everything a delivery's capabilities noted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Record {
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    pub deliveries: Vec<Delivery>,
    pub writes: Vec<WriteNote>,
    pub dropped_writes: usize,
    pub reports: Vec<StatusReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_log_budget_counts_what_it_refuses() {
        let budget = Arc::new(HostLogBudget::default());
        let mut cx = CallContext::new("p", "e", Instant::now());
        cx.host_log = Some(budget.clone());
        for _ in 0..(HOST_LOG_LINES_PER_MINUTE + 50) {
            budget.admit();
        }
        assert_eq!(budget.take_suppressed(), 50);
        assert_eq!(budget.take_suppressed(), 0);
    }

    #[test]
    fn a_log_line_cannot_forge_another() {
        let cx = CallContext::new("p", "e", Instant::now());
        cx.log(
            Level::Info,
            LogSource::Log,
            "ok\n2026-01-01T00:00:00Z ERROR host: fake\u{1b}[2J",
        );
        let rec = cx.take_record();
        assert_eq!(
            rec.logs[0].message,
            "ok\\n2026-01-01T00:00:00Z ERROR host: fake\\u{1b}[2J"
        );
    }
}
