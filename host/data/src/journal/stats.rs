//! Aggregates of the journal for the console: per-plugin success rate and
//! duration percentiles, events per trigger over time, and a cheap mark that
//! changes whenever something new is journaled.

use rusqlite::params;
use serde::Serialize;

use super::{Journal, JournalError};

/// Finished runs a plugin's statistics are computed over (the newest).
pub const STATS_WINDOW: u32 = 1000;
/// Most time buckets [`Journal::events_over_time`] returns.
pub const MAX_BUCKETS: i64 = 2000;

/// A plugin's recent record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PluginStats {
    /// Finished runs in the window (at most [`STATS_WINDOW`]).
    pub finished: u64,
    pub succeeded: u64,
    pub dead: u64,
    /// Runs queued or retrying now.
    pub waiting: u64,
    /// Median and 99th percentile of the last attempt's duration.
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

impl PluginStats {
    /// Succeeded over finished, when any finished.
    pub fn success_rate(&self) -> Option<f64> {
        (self.finished > 0).then(|| self.succeeded as f64 / self.finished as f64)
    }
}

/// Events of one trigger in one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the bucket (ms since the epoch).
    pub start_ms: i64,
    pub trigger: String,
    pub events: u64,
}

/// The nearest-rank percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Journal {
    /// `plugin`'s statistics over its newest [`STATS_WINDOW`] finished runs.
    pub fn plugin_stats(&self, plugin: &str) -> Result<PluginStats, JournalError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, duration_ms FROM _tf_runs
                 WHERE plugin = ?1 AND status IN ('succeeded', 'dead')
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let mut stats = PluginStats::default();
            let mut durations = Vec::new();
            let rows = stmt.query_map(params![plugin, STATS_WINDOW], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })?;
            for row in rows {
                let (status, duration) = row?;
                stats.finished += 1;
                match status.as_str() {
                    "succeeded" => stats.succeeded += 1,
                    _ => stats.dead += 1,
                }
                durations.extend(duration);
            }
            durations.sort_unstable();
            stats.p50_ms = percentile(&durations, 50.0);
            stats.p99_ms = percentile(&durations, 99.0);
            stats.waiting = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM _tf_runs WHERE plugin = ?1 AND status IN ('queued', 'retrying')",
                )?
                .query_row([plugin], |r| r.get(0))?;
            Ok(stats)
        })
    }

    /// Events per trigger since `since_ms`, in buckets of `bucket_ms`
    /// (widened so that there are at most [`MAX_BUCKETS`]), oldest first.
    pub fn events_over_time(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<(i64, Vec<Bucket>), JournalError> {
        let span = (super::now_ms() - since_ms).max(1);
        let bucket = bucket_ms.max(1).max(span / MAX_BUCKETS + 1);
        let rows = self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT (accepted_ms / ?2) * ?2 AS b, kind, COUNT(*) FROM _tf_events
                 WHERE accepted_ms >= ?1 GROUP BY b, kind ORDER BY b, kind",
            )?;
            let rows = stmt.query_map(params![since_ms, bucket], |r| {
                Ok(Bucket {
                    start_ms: r.get(0)?,
                    trigger: r.get(1)?,
                    events: r.get(2)?,
                })
            })?;
            rows.collect()
        })?;
        Ok((bucket, rows))
    }

    /// A mark that changes whenever an event, a run or an attempt is
    /// journaled (each read is one index seek).
    pub fn live_mark(&self) -> Result<[i64; 3], JournalError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM _tf_events),
                        (SELECT COALESCE(MAX(id), 0) FROM _tf_runs),
                        (SELECT COALESCE(MAX(rowid), 0) FROM _tf_run_attempts)",
            )?
            .query_row([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
    }
}
