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
    cluster: ClusterGauges,
}

/// The cluster's series, as this member last saw them (0 outside a cluster).
#[derive(Default)]
struct ClusterGauges {
    refresher: Gauge,
    members: Gauge,
    generation: Gauge,
    events: Gauge,
    runs_waiting: Gauge,
    dead_letters: Gauge,
    in_flight: Gauge,
    pending: Family<PluginLabel, Gauge>,
    ack_pending: Family<PluginLabel, Gauge>,
}

impl ClusterGauges {
    fn register(&self, r: &mut Registry) {
        let g =
            |r: &mut Registry, name: &str, help: &str, m: &Gauge| r.register(name, help, m.clone());
        g(
            r,
            "triggerfish_cluster_refresher",
            "1 while this member holds the refresher's lease",
            &self.refresher,
        );
        g(
            r,
            "triggerfish_cluster_members",
            "Members with a live heartbeat",
            &self.members,
        );
        g(
            r,
            "triggerfish_cluster_store_generation",
            "Store generation this member reads",
            &self.generation,
        );
        g(
            r,
            "triggerfish_cluster_events",
            "Events in the cluster's events stream",
            &self.events,
        );
        g(
            r,
            "triggerfish_cluster_runs_waiting",
            "Runs in the cluster's runs stream (not yet acked)",
            &self.runs_waiting,
        );
        g(
            r,
            "triggerfish_cluster_dead_letters",
            "Runs in the cluster's dead-letter stream",
            &self.dead_letters,
        );
        g(
            r,
            "triggerfish_cluster_runs_in_flight",
            "Runs this member is attempting now",
            &self.in_flight,
        );
        r.register(
            "triggerfish_cluster_runs_pending",
            "Runs not yet delivered to any member, by plugin",
            self.pending.clone(),
        );
        r.register(
            "triggerfish_cluster_runs_ack_pending",
            "Runs delivered and not yet acked, by plugin",
            self.ack_pending.clone(),
        );
    }
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
            cluster: ClusterGauges::default(),
        };
        m.cluster.register(&mut m.registry);
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
    pub fn render(
        &self,
        journal: &Journal,
        host: &Host,
        member: Option<&crate::cluster::Member>,
    ) -> Result<String, String> {
        if let Some(m) = member {
            self.set_cluster(m);
        }
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

    fn set_cluster(&self, m: &crate::cluster::Member) {
        let c = &self.cluster;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        c.refresher.set(i64::from(m.is_refresher()));
        c.generation
            .set(n(m.generation.load(std::sync::atomic::Ordering::Relaxed)));
        c.in_flight.set(n(m
            .counters
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)));
        if let Some(s) = m.status() {
            c.members.set(n(s.members.len() as u64));
            c.events.set(n(s.events));
            c.runs_waiting.set(n(s.runs_waiting));
            c.dead_letters.set(n(s.dead_letters));
            for lag in &s.consumers {
                let label = PluginLabel {
                    plugin: lag.plugin.clone(),
                };
                c.pending.get_or_create(&label).set(n(lag.pending));
                c.ack_pending.get_or_create(&label).set(n(lag.ack_pending));
            }
        }
    }
}
