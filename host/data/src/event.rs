//! Events: the six triggers as plain data (mirroring the WIT records of
//! `triggerfish:plugin`, field for field), default events for `fire`, and
//! payload overrides. The plugin runtime converts these to its WIT bindings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which way a value moved through its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Direction {
    /// From below the threshold to at or above it.
    Up,
    /// From at or above the threshold to below it.
    Down,
}

/// A data source could not be refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSourceRefreshFailed {
    pub source: String,
    pub error: String,
    pub permanent: bool,
    pub attempts: u32,
    pub rows_read: u64,
    pub row: Option<u64>,
    pub field: Option<String>,
}

/// A data source was refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSourceRefreshSucceeded {
    pub source: String,
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub duration_ms: u64,
}

/// A segment's member count crossed one of its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentThresholdCrossed {
    pub segment: String,
    pub threshold: u64,
    pub previous: u64,
    pub current: u64,
    pub direction: Direction,
}

/// A business measure without dimensions crossed one of its thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureThresholdCrossed {
    pub measure: String,
    pub threshold: f64,
    pub previous: f64,
    pub current: f64,
    pub direction: Direction,
}

/// How a pipeline stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum StageStatus {
    Ok,
    Failed,
    Skipped,
}

/// One stage of a refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub name: String,
    pub status: StageStatus,
    pub rows: u64,
    pub duration_ms: u64,
    pub detail: Option<String>,
}

/// A full refresh finished, whatever the outcome of each stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullRefreshCompleted {
    pub stages: Vec<StageSummary>,
    pub succeeded: bool,
    pub duration_ms: u64,
}

/// Unification (map, match, merge) finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnificationRefreshCompleted {
    pub source_rows: u64,
    pub profiles: u64,
    pub matched_records: u64,
    pub merges: u64,
    pub map_ms: u64,
    pub match_ms: u64,
    pub merge_ms: u64,
    pub duration_ms: u64,
}

/// The six automatic triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Trigger {
    DataSourceRefreshFailed(DataSourceRefreshFailed),
    DataSourceRefreshSucceeded(DataSourceRefreshSucceeded),
    SegmentThresholdCrossed(SegmentThresholdCrossed),
    MeasureThresholdCrossed(MeasureThresholdCrossed),
    FullRefreshCompleted(FullRefreshCompleted),
    UnificationRefreshCompleted(UnificationRefreshCompleted),
}

/// One occurrence of a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; the idempotency key plugins see.
    pub id: String,
    /// When it happened, RFC 3339 UTC.
    pub occurred_at: String,
    pub trigger: Trigger,
}

/// The six trigger kinds, named as in the WIT (`data-source-refresh-failed`, ...).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[strum(serialize_all = "kebab-case")]
pub enum TriggerKind {
    DataSourceRefreshFailed,
    DataSourceRefreshSucceeded,
    SegmentThresholdCrossed,
    MeasureThresholdCrossed,
    FullRefreshCompleted,
    UnificationRefreshCompleted,
}

impl TriggerKind {
    /// All kinds, in WIT order.
    pub const ALL: &'static [TriggerKind] = <TriggerKind as strum::VariantArray>::VARIANTS;

    /// The WIT case name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kind of a trigger value.
    pub fn of(trigger: &Trigger) -> Self {
        match trigger {
            Trigger::DataSourceRefreshFailed(_) => TriggerKind::DataSourceRefreshFailed,
            Trigger::DataSourceRefreshSucceeded(_) => TriggerKind::DataSourceRefreshSucceeded,
            Trigger::SegmentThresholdCrossed(_) => TriggerKind::SegmentThresholdCrossed,
            Trigger::MeasureThresholdCrossed(_) => TriggerKind::MeasureThresholdCrossed,
            Trigger::FullRefreshCompleted(_) => TriggerKind::FullRefreshCompleted,
            Trigger::UnificationRefreshCompleted(_) => TriggerKind::UnificationRefreshCompleted,
        }
    }

    /// An example trigger of this kind with a sensible value in every field.
    pub fn example(self) -> Trigger {
        match self {
            TriggerKind::DataSourceRefreshFailed => {
                Trigger::DataSourceRefreshFailed(DataSourceRefreshFailed {
                    source: "crm-contacts".into(),
                    error: "file not found: data/crm-contacts.csv".into(),
                    permanent: true,
                    attempts: 1,
                    rows_read: 0,
                    row: None,
                    field: None,
                })
            }
            TriggerKind::DataSourceRefreshSucceeded => {
                Trigger::DataSourceRefreshSucceeded(DataSourceRefreshSucceeded {
                    source: "crm-contacts".into(),
                    rows_read: 1_000,
                    rows_rejected: 0,
                    duration_ms: 120,
                })
            }
            TriggerKind::SegmentThresholdCrossed => {
                Trigger::SegmentThresholdCrossed(SegmentThresholdCrossed {
                    segment: "high-value-customers".into(),
                    threshold: 100,
                    previous: 87,
                    current: 123,
                    direction: Direction::Up,
                })
            }
            TriggerKind::MeasureThresholdCrossed => {
                Trigger::MeasureThresholdCrossed(MeasureThresholdCrossed {
                    measure: "total-revenue".into(),
                    threshold: 1_000_000.0,
                    previous: 950_000.0,
                    current: 1_020_000.0,
                    direction: Direction::Up,
                })
            }
            TriggerKind::FullRefreshCompleted => {
                let stage = |name: &str, rows| StageSummary {
                    name: name.into(),
                    status: StageStatus::Ok,
                    rows,
                    duration_ms: 10,
                    detail: None,
                };
                Trigger::FullRefreshCompleted(FullRefreshCompleted {
                    stages: vec![
                        stage("source:crm-contacts", 1_000),
                        stage("unification", 900),
                        stage("segments", 3),
                        stage("measures", 2),
                        stage("publish", 6),
                    ],
                    succeeded: true,
                    duration_ms: 40,
                })
            }
            TriggerKind::UnificationRefreshCompleted => {
                Trigger::UnificationRefreshCompleted(UnificationRefreshCompleted {
                    source_rows: 1_000,
                    profiles: 900,
                    matched_records: 180,
                    merges: 80,
                    map_ms: 5,
                    match_ms: 20,
                    merge_ms: 5,
                    duration_ms: 30,
                })
            }
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line saying what a trigger carries, for terminals and logs.
pub fn describe(trigger: &Trigger) -> String {
    let dir = |d: Direction| -> &'static str { d.into() };
    match trigger {
        Trigger::DataSourceRefreshFailed(f) => format!(
            "source '{}' failed ({}, {} attempt(s)): {}",
            f.source,
            if f.permanent { "permanent" } else { "transient" },
            f.attempts,
            f.error
        ),
        Trigger::DataSourceRefreshSucceeded(s) => format!(
            "source '{}' refreshed: {} rows ({} rejected) in {} ms",
            s.source, s.rows_read, s.rows_rejected, s.duration_ms
        ),
        Trigger::SegmentThresholdCrossed(s) => format!(
            "segment '{}' crossed {} {}: {} -> {}",
            s.segment,
            s.threshold,
            dir(s.direction),
            s.previous,
            s.current
        ),
        Trigger::MeasureThresholdCrossed(m) => format!(
            "measure '{}' crossed {} {}: {} -> {}",
            m.measure,
            m.threshold,
            dir(m.direction),
            m.previous,
            m.current
        ),
        Trigger::FullRefreshCompleted(f) => format!(
            "full refresh {} in {} ms ({} stages)",
            if f.succeeded { "succeeded" } else { "had failures" },
            f.duration_ms,
            f.stages.len()
        ),
        Trigger::UnificationRefreshCompleted(u) => format!(
            "unification: {} source rows -> {} profiles ({} records matched into {} merges) in {} ms (map {}, match {}, merge {})",
            u.source_rows, u.profiles, u.matched_records, u.merges, u.duration_ms, u.map_ms, u.match_ms, u.merge_ms
        ),
    }
}

/// An unknown trigger name.
#[derive(Debug, thiserror::Error)]
#[error("unknown trigger '{0}' (expected one of: {list})", list = TriggerKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownTrigger(pub String);

impl FromStr for TriggerKind {
    type Err = UnknownTrigger;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownTrigger(s.to_owned()))
    }
}

/// A `--payload` that does not fit the event.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("payload must be a JSON object")]
    NotObject,
    #[error("payload key '{0}' is not a field of {1} (fields: {2})")]
    UnknownField(String, TriggerKind, String),
    #[error("payload does not fit {0}: {1}")]
    Shape(TriggerKind, serde_json::Error),
}

/// Current time, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// A fresh event id: time-ordered and unique within this host.
pub fn new_event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("evt-{nanos:x}-{:x}-{seq:x}", std::process::id())
}

/// Build an event of `kind` from the example values, with `payload` (a JSON
/// object) overriding fields of the trigger record. The keys `id` and
/// `occurred_at` set the event's own fields.
pub fn build_event(kind: TriggerKind, payload: Option<&str>) -> Result<Event, PayloadError> {
    let trigger = kind.example();
    let mut id = new_event_id();
    let mut occurred_at = now_rfc3339();
    let trigger = match payload {
        None => trigger,
        Some(text) => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(PayloadError::Json)?;
            let serde_json::Value::Object(overrides) = value else {
                return Err(PayloadError::NotObject);
            };
            // Serialized as {"Variant": {fields}}.
            let mut tree =
                serde_json::to_value(&trigger).map_err(|e| PayloadError::Shape(kind, e))?;
            let fields = tree
                .as_object_mut()
                .and_then(|o| o.values_mut().next())
                .and_then(|v| v.as_object_mut())
                .ok_or(PayloadError::NotObject)?;
            for (k, v) in overrides {
                match k.as_str() {
                    "id" => {
                        id = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    }
                    "occurred_at" | "occurred-at" => {
                        occurred_at = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    }
                    _ => {
                        let key = k.replace('-', "_");
                        if !fields.contains_key(&key) {
                            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                            return Err(PayloadError::UnknownField(k, kind, names.join(", ")));
                        }
                        fields.insert(key, normalize_enum(&k, v));
                    }
                }
            }
            serde_json::from_value(tree).map_err(|e| PayloadError::Shape(kind, e))?
        }
    };
    Ok(Event {
        id,
        occurred_at,
        trigger,
    })
}

/// Accept `"up"`/`"down"` as well as the serde names `"Up"`/`"Down"`.
fn normalize_enum(key: &str, v: serde_json::Value) -> serde_json::Value {
    match (key, v.as_str()) {
        ("direction", Some(s)) => match s.to_ascii_lowercase().as_str() {
            "up" => "Up".into(),
            "down" => "Down".into(),
            _ => v,
        },
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &k in TriggerKind::ALL {
            assert_eq!(k.as_str().parse::<TriggerKind>().unwrap(), k);
            assert_eq!(TriggerKind::of(&k.example()), k);
        }
    }

    #[test]
    fn payload_overrides_fields() {
        let e = build_event(
            TriggerKind::DataSourceRefreshFailed,
            Some(r#"{"id":"e1","source":"shop","permanent":false,"rows-read":7}"#),
        )
        .unwrap();
        assert_eq!(e.id, "e1");
        let Trigger::DataSourceRefreshFailed(f) = e.trigger else {
            panic!("wrong kind")
        };
        assert_eq!(f.source, "shop");
        assert!(!f.permanent);
        assert_eq!(f.rows_read, 7);
    }

    #[test]
    fn direction_accepts_lower_case() {
        let e = build_event(
            TriggerKind::SegmentThresholdCrossed,
            Some(r#"{"direction":"down"}"#),
        )
        .unwrap();
        let Trigger::SegmentThresholdCrossed(s) = e.trigger else {
            panic!("wrong kind")
        };
        assert_eq!(s.direction, Direction::Down);
    }

    #[test]
    fn payload_unknown_field_is_named() {
        let err = build_event(
            TriggerKind::SegmentThresholdCrossed,
            Some(r#"{"segmnt":"x"}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("payload key 'segmnt' is not a field of segment-threshold-crossed"),
            "{err}"
        );
    }

    #[test]
    fn payload_wrong_type_is_reported() {
        let err = build_event(
            TriggerKind::SegmentThresholdCrossed,
            Some(r#"{"current":"many"}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("payload does not fit segment-threshold-crossed"),
            "{err}"
        );
    }
}
