//! `GET /metrics`: Prometheus text, through `prometheus-client`. Counters and
//! histograms are kept in memory since start; totals by status and trigger
//! are read from the journal at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use triggerfish_data::event::TriggerKind;
use triggerfish_data::journal::{Journal, RunStatus, Verdict};
use triggerfish_runtime::Host;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    plugin: String,
    trigger: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabel {
    trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: String,
}

fn refresh_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    accepted: Family<TriggerLabel, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    retries: Family<PluginLabel, Counter>,
    dead_letters: Family<PluginLabel, Counter>,
    latency: Histogram,
    refresh: Family<ScopeLabel, Histogram, fn() -> Histogram>,
    runs: Family<StatusLabel, Gauge>,
    events: Family<TriggerLabel, Gauge>,
    throttled: Family<PluginLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            accepted: Family::default(),
            attempts: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            // 0.5 ms to about 16 s.
            latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            refresh: Family::new_with_constructor(refresh_histogram),
            runs: Family::default(),
            events: Family::default(),
            throttled: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "triggerfish_events_accepted",
            "Events appended to the journal since start, by trigger",
            m.accepted.clone(),
        );
        r.register(
            "triggerfish_run_attempts",
            "Attempts of runs since start, by plugin, trigger and outcome (succeeded, retry, dead)",
            m.attempts.clone(),
        );
        r.register(
            "triggerfish_retries",
            "Failed attempts that were scheduled again, by plugin",
            m.retries.clone(),
        );
        r.register(
            "triggerfish_dead_letters",
            "Runs dead-lettered since start, by plugin",
            m.dead_letters.clone(),
        );
        r.register(
            "triggerfish_dispatch_latency_seconds",
            "From a run becoming due (its event accepted, or its replay) to its first attempt starting",
            m.latency.clone(),
        );
        r.register(
            "triggerfish_refresh_duration_seconds",
            "Insights refreshes, by scope (full, source, unification)",
            m.refresh.clone(),
        );
        r.register(
            "triggerfish_runs",
            "Runs in the journal, by status",
            m.runs.clone(),
        );
        r.register(
            "triggerfish_journal_events",
            "Events in the journal, by trigger",
            m.events.clone(),
        );
        r.register(
            "triggerfish_entity_calls_throttled",
            "Entity calls that waited for or were refused budget, by plugin",
            m.throttled.clone(),
        );
        m
    }

    /// An event was appended.
    pub fn accepted(&self, kind: TriggerKind) {
        self.accepted
            .get_or_create(&TriggerLabel {
                trigger: kind.as_str().into(),
            })
            .inc();
    }

    /// An attempt ended with `verdict`.
    pub fn finished(&self, plugin: &str, kind: TriggerKind, verdict: &Verdict) {
        let outcome = match verdict {
            Verdict::Succeeded => "succeeded",
            Verdict::Retry { .. } => "retry",
            Verdict::Dead => "dead",
        };
        self.attempts
            .get_or_create(&AttemptLabels {
                plugin: plugin.into(),
                trigger: kind.as_str().into(),
                outcome: outcome.into(),
            })
            .inc();
        let label = PluginLabel {
            plugin: plugin.into(),
        };
        match verdict {
            Verdict::Retry { .. } => {
                self.retries.get_or_create(&label).inc();
            }
            Verdict::Dead => {
                self.dead_letters.get_or_create(&label).inc();
            }
            Verdict::Succeeded => {}
        }
    }

    /// An event's first attempt started `seconds` after it was accepted.
    pub fn dispatch_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// A refresh of `scope` took `seconds`.
    pub fn refresh(&self, scope: &str, seconds: f64) {
        self.refresh
            .get_or_create(&ScopeLabel {
                scope: scope.into(),
            })
            .observe(seconds);
    }

    /// The text exposition, with journal totals and throttling read now.
    pub fn render(&self, journal: &Journal, host: &Host) -> Result<String, String> {
        let counts = journal.counts().map_err(|e| e.to_string())?;
        // A status or trigger with no rows left reads 0, not its last value.
        for status in <RunStatus as strum::VariantArray>::VARIANTS {
            self.runs
                .get_or_create(&StatusLabel {
                    status: status.as_str().into(),
                })
                .set(0);
        }
        for kind in <TriggerKind as strum::VariantArray>::VARIANTS {
            self.events
                .get_or_create(&TriggerLabel {
                    trigger: kind.as_str().into(),
                })
                .set(0);
        }
        for (status, n) in counts.runs_by_status {
            self.runs
                .get_or_create(&StatusLabel { status })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (trigger, n) in counts.events_by_trigger {
            self.events
                .get_or_create(&TriggerLabel { trigger })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for p in host.plugins() {
            let n = host.entity_throttled(&p.config.name).unwrap_or(0);
            self.throttled
                .get_or_create(&PluginLabel {
                    plugin: p.config.name.clone(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(text)
    }
}
