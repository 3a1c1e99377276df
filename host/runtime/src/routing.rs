//! Which plugins get a run for an event, and when a failed run is tried
//! again: trigger conditions (`[plugins.when]`) and retry policies
//! (`[plugins.retry]`), modelled on Power Automate's.

use std::time::Duration;

use triggerfish_data::event::{Direction, Event, Trigger, TriggerKind};
use triggerfish_data::journal::{now_ms, Router, Verdict};

use crate::settings::PluginConfig;

/// Power Automate's default: 4 retries.
pub const DEFAULT_RETRIES: u32 = 4;
/// Its first wait, 7.5 s, doubling after each failure.
pub const DEFAULT_FIRST_WAIT: Duration = Duration::from_millis(7_500);
/// Shortest wait (unless the first wait is shorter).
pub const MIN_WAIT: Duration = Duration::from_secs(5);
/// Longest wait by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(45);
/// Most retries a plugin may ask for.
pub const MAX_RETRIES: u32 = 90;
/// Longest wait a plugin may ask for (one day).
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: DEFAULT_RETRIES,
            first_wait: DEFAULT_FIRST_WAIT,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `n` (1-based), or `None` when none is left.
    /// `jitter` in [0, 1) spreads waits by ±20 %.
    pub fn wait(&self, n: u32, jitter: f64) -> Option<Duration> {
        if n == 0 || n > self.retries {
            return None;
        }
        let base = self.first_wait.as_secs_f64() * 2f64.powi(n.min(62) as i32 - 1);
        let spread = base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        let low = MIN_WAIT.min(self.first_wait).as_secs_f64();
        let high = self.max_wait.as_secs_f64().max(low);
        Some(Duration::from_secs_f64(spread.clamp(low, high)))
    }
}

/// What follows attempt `made` (1-based, since the last replay) of a run
/// under `policy`: success, a retry after the policy's wait, or a dead letter.
pub fn verdict(policy: Option<RetryPolicy>, made: u32, succeeded: bool) -> Verdict {
    if succeeded {
        return Verdict::Succeeded;
    }
    match policy.and_then(|p| p.wait(made, fastrand::f64())) {
        Some(wait) => Verdict::Retry {
            at_ms: now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        },
        None => Verdict::Dead,
    }
}

/// Trigger conditions on an event's fields. A condition applies to the
/// events that have its field: `source` to the two data-source triggers,
/// `segment` and `measure` to their crossings, `direction` to both
/// crossings, `permanent` to refresh failures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    /// Glob patterns, e.g. `crm-*`.
    pub source: Vec<glob::Pattern>,
    pub segment: Vec<glob::Pattern>,
    pub measure: Vec<glob::Pattern>,
    pub direction: Option<Direction>,
    pub permanent: Option<bool>,
}

fn any(patterns: &[glob::Pattern], value: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(value))
}

impl When {
    /// Whether `event` meets every condition that applies to it.
    pub fn matches(&self, event: &Event) -> bool {
        let dir = |d: Direction| self.direction.is_none_or(|w| w == d);
        match &event.trigger {
            Trigger::DataSourceRefreshFailed(t) => {
                any(&self.source, &t.source) && self.permanent.is_none_or(|p| p == t.permanent)
            }
            Trigger::DataSourceRefreshSucceeded(t) => any(&self.source, &t.source),
            Trigger::SegmentThresholdCrossed(t) => {
                any(&self.segment, &t.segment) && dir(t.direction)
            }
            Trigger::MeasureThresholdCrossed(t) => {
                any(&self.measure, &t.measure) && dir(t.direction)
            }
            Trigger::FullRefreshCompleted(_) | Trigger::UnificationRefreshCompleted(_) => true,
        }
    }
}

/// The plugins of a configuration, as a [`Router`].
#[derive(Debug, Clone)]
pub struct Routes(Vec<(String, Vec<TriggerKind>, When)>);

impl Routes {
    /// Routes for these plugins.
    pub fn new(plugins: &[PluginConfig]) -> Self {
        Self(
            plugins
                .iter()
                .map(|p| (p.name.clone(), p.triggers.clone(), p.when.clone()))
                .collect(),
        )
    }
}

impl Router for Routes {
    fn plugins_for(&self, event: &Event) -> Vec<String> {
        let kind = TriggerKind::of(&event.trigger);
        self.0
            .iter()
            .filter(|(_, triggers, when)| triggers.contains(&kind) && when.matches(event))
            .map(|(name, _, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triggerfish_data::event::build_event;

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_default_policy_is_power_automates() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=5).map(|n| p.wait(n, 0.5)).collect();
        assert_eq!(
            waits,
            [
                Some(s(7_500)),
                Some(s(15_000)),
                Some(s(30_000)),
                Some(s(45_000)),
                None
            ]
        );
        // Jitter stays inside the 5-45 s clamp.
        assert_eq!(p.wait(1, 0.0), Some(s(6_000)));
        assert_eq!(p.wait(4, 1.0), Some(s(45_000)));
        assert_eq!(p.wait(0, 0.5), None);
    }

    #[test]
    fn short_first_waits_lower_the_floor_and_none_means_none() {
        let p = RetryPolicy {
            retries: 2,
            first_wait: s(100),
            max_wait: s(150),
        };
        assert_eq!(p.wait(1, 0.5), Some(s(100)));
        assert_eq!(p.wait(2, 0.5), Some(s(150)));
        assert_eq!(p.wait(3, 0.5), None);
        let none = RetryPolicy { retries: 0, ..p };
        assert_eq!(none.wait(1, 0.5), None);
    }

    #[test]
    fn conditions_apply_to_events_that_have_the_field() {
        let when = When {
            source: vec![glob::Pattern::new("crm-*").unwrap()],
            permanent: Some(true),
            ..Default::default()
        };
        let failed = |source: &str, permanent: bool| {
            build_event(
                TriggerKind::DataSourceRefreshFailed,
                Some(&format!(
                    r#"{{"source":"{source}","permanent":{permanent}}}"#
                )),
            )
            .unwrap()
        };
        assert!(when.matches(&failed("crm-eu", true)));
        assert!(!when.matches(&failed("crm-eu", false)));
        assert!(!when.matches(&failed("erp", true)));
        let full = build_event(TriggerKind::FullRefreshCompleted, None).unwrap();
        assert!(when.matches(&full));
        let down = When {
            direction: Some(Direction::Down),
            ..Default::default()
        };
        let up = build_event(
            TriggerKind::SegmentThresholdCrossed,
            Some(r#"{"direction":"up"}"#),
        )
        .unwrap();
        assert!(!down.matches(&up));
    }
}
