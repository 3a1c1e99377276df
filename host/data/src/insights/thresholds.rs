//! Threshold crossings, and the last values they are judged against, kept in
//! the store so that a restart neither fires a crossing again nor misses one.
//!
//! A value crosses threshold `t` upward when it goes from below `t` to `t` or
//! more, and downward when it goes from `t` or more to below `t`. Comparing
//! each refresh with the last one gives hysteresis for free: staying on one
//! side fires nothing; crossing back and over again fires again. Before its
//! first refresh a segment or measure counts as 0.

use super::workspace::{Threshold, Watch};
use crate::event::Direction;
use crate::store::{EntityDb, StoreError};

/// What is being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Kind {
    Segment,
    Measure,
}

impl Kind {
    fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    pub threshold: f64,
    pub previous: f64,
    pub current: f64,
    pub direction: Direction,
}

/// The crossings from `previous` to `current` that `thresholds` watch for.
pub fn crossings(previous: f64, current: f64, thresholds: &[Threshold]) -> Vec<Crossing> {
    let mut out = Vec::new();
    for t in thresholds {
        let v = t.value;
        let up = previous < v && current >= v;
        let down = previous >= v && current < v;
        let direction = match (up, down, t.watch) {
            (true, _, Watch::Up | Watch::Both) => Direction::Up,
            (_, true, Watch::Down | Watch::Both) => Direction::Down,
            _ => continue,
        };
        out.push(Crossing {
            threshold: v,
            previous,
            current,
            direction,
        });
    }
    out
}

/// The last value recorded for `name`, or 0 before its first refresh.
pub fn last_value(store: &EntityDb, kind: Kind, name: &str) -> Result<f64, StoreError> {
    Ok(store.watched_value(kind.as_str(), name)?.unwrap_or(0.0))
}

/// Record the value of `name` as of this refresh.
pub fn record_value(
    store: &EntityDb,
    kind: Kind,
    name: &str,
    value: f64,
) -> Result<(), StoreError> {
    store.record_watched_value(kind.as_str(), name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: f64, watch: Watch) -> Threshold {
        Threshold { value, watch }
    }

    fn dirs(prev: f64, cur: f64, th: &[Threshold]) -> Vec<(f64, Direction)> {
        crossings(prev, cur, th)
            .into_iter()
            .map(|c| (c.threshold, c.direction))
            .collect()
    }

    #[test]
    fn up_down_and_both() {
        let up = [t(10.0, Watch::Up)];
        let down = [t(10.0, Watch::Down)];
        let both = [t(10.0, Watch::Both)];
        assert_eq!(dirs(9.0, 10.0, &up), [(10.0, Direction::Up)]);
        assert_eq!(dirs(10.0, 9.0, &up), []);
        assert_eq!(dirs(10.0, 9.0, &down), [(10.0, Direction::Down)]);
        assert_eq!(dirs(9.0, 12.0, &down), []);
        assert_eq!(dirs(9.0, 12.0, &both), [(10.0, Direction::Up)]);
        assert_eq!(dirs(12.0, 3.0, &both), [(10.0, Direction::Down)]);
    }

    #[test]
    fn hysteresis_fires_once_per_crossing() {
        let up = [t(10.0, Watch::Up)];
        let series = [0.0, 12.0, 15.0, 11.0, 10.0, 8.0, 10.0, 30.0];
        let fired: Vec<usize> = series
            .windows(2)
            .enumerate()
            .filter(|(_, w)| !crossings(w[0], w[1], &up).is_empty())
            .map(|(i, _)| i + 1)
            .collect();
        // Up at 12, nothing while it stays at or above 10, down (unwatched)
        // at 8, up again at 10.
        assert_eq!(fired, [1, 6]);
    }

    #[test]
    fn several_thresholds_in_one_jump() {
        let th = [t(5.0, Watch::Up), t(10.0, Watch::Up), t(50.0, Watch::Up)];
        assert_eq!(
            dirs(0.0, 20.0, &th),
            [(5.0, Direction::Up), (10.0, Direction::Up)]
        );
    }

    #[test]
    fn last_values_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = EntityDb::open(&path, Default::default()).unwrap();
        assert_eq!(last_value(&store, Kind::Segment, "vip").unwrap(), 0.0);
        record_value(&store, Kind::Segment, "vip", 42.0).unwrap();
        drop(store);
        let store = EntityDb::open(&path, Default::default()).unwrap();
        assert_eq!(last_value(&store, Kind::Segment, "vip").unwrap(), 42.0);
        assert_eq!(last_value(&store, Kind::Measure, "vip").unwrap(), 0.0);
    }
}
