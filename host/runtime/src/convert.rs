//! Plain events of `triggerfish-data` to the WIT records plugins receive,
//! field for field.

use triggerfish_data::event as plain;

use crate::bindings as wit;

impl From<plain::Direction> for wit::Direction {
    fn from(d: plain::Direction) -> Self {
        match d {
            plain::Direction::Up => wit::Direction::Up,
            plain::Direction::Down => wit::Direction::Down,
        }
    }
}

impl From<plain::StageStatus> for wit::StageStatus {
    fn from(s: plain::StageStatus) -> Self {
        match s {
            plain::StageStatus::Ok => wit::StageStatus::Ok,
            plain::StageStatus::Failed => wit::StageStatus::Failed,
            plain::StageStatus::Skipped => wit::StageStatus::Skipped,
        }
    }
}

impl From<&plain::StageSummary> for wit::StageSummary {
    fn from(s: &plain::StageSummary) -> Self {
        wit::StageSummary {
            name: s.name.clone(),
            status: s.status.into(),
            rows: s.rows,
            duration_ms: s.duration_ms,
            detail: s.detail.clone(),
        }
    }
}

impl From<&plain::Trigger> for wit::Trigger {
    fn from(t: &plain::Trigger) -> Self {
        use plain::Trigger as P;
        match t {
            P::DataSourceRefreshFailed(f) => {
                wit::Trigger::DataSourceRefreshFailed(wit::DataSourceRefreshFailed {
                    source: f.source.clone(),
                    error: f.error.clone(),
                    permanent: f.permanent,
                    attempts: f.attempts,
                    rows_read: f.rows_read,
                    row: f.row,
                    field: f.field.clone(),
                })
            }
            P::DataSourceRefreshSucceeded(s) => {
                wit::Trigger::DataSourceRefreshSucceeded(wit::DataSourceRefreshSucceeded {
                    source: s.source.clone(),
                    rows_read: s.rows_read,
                    rows_rejected: s.rows_rejected,
                    duration_ms: s.duration_ms,
                })
            }
            P::SegmentThresholdCrossed(s) => {
                wit::Trigger::SegmentThresholdCrossed(wit::SegmentThresholdCrossed {
                    segment: s.segment.clone(),
                    threshold: s.threshold,
                    previous: s.previous,
                    current: s.current,
                    direction: s.direction.into(),
                })
            }
            P::MeasureThresholdCrossed(m) => {
                wit::Trigger::MeasureThresholdCrossed(wit::MeasureThresholdCrossed {
                    measure: m.measure.clone(),
                    threshold: m.threshold,
                    previous: m.previous,
                    current: m.current,
                    direction: m.direction.into(),
                })
            }
            P::FullRefreshCompleted(f) => {
                wit::Trigger::FullRefreshCompleted(wit::FullRefreshCompleted {
                    stages: f.stages.iter().map(Into::into).collect(),
                    succeeded: f.succeeded,
                    duration_ms: f.duration_ms,
                })
            }
            P::UnificationRefreshCompleted(u) => {
                wit::Trigger::UnificationRefreshCompleted(wit::UnificationRefreshCompleted {
                    source_rows: u.source_rows,
                    profiles: u.profiles,
                    matched_records: u.matched_records,
                    merges: u.merges,
                    map_ms: u.map_ms,
                    match_ms: u.match_ms,
                    merge_ms: u.merge_ms,
                    duration_ms: u.duration_ms,
                })
            }
        }
    }
}

impl From<&plain::Event> for wit::Event {
    fn from(e: &plain::Event) -> Self {
        wit::Event {
            id: e.id.clone(),
            occurred_at: e.occurred_at.clone(),
            trigger: (&e.trigger).into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use triggerfish_data::event::{build_event, TriggerKind};

    use super::*;

    /// Every field reaches the WIT record: both serialize to the same JSON.
    #[test]
    fn every_kind_converts_field_for_field() {
        for &kind in TriggerKind::ALL {
            let event = build_event(kind, None).unwrap();
            let converted = wit::Event::from(&event);
            assert_eq!(
                serde_json::to_value(&converted).unwrap(),
                serde_json::to_value(&event).unwrap(),
                "{kind}"
            );
        }
    }
}
