//! Test guest: posts every event it receives, with every field, as JSON text
//! to the Teams channel `events`. On `unification-refresh-completed` it also
//! pages through `Customer` and reports how many rows it saw. With config
//! `label` set, the text carries it (tests tell plugin versions apart by it).

use serde_json::{json, Value};
use triggerfish_plugin_sdk::{config, entities, teams, Event, Plugin, StageStatus, Trigger};

struct Recorder;

fn status(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Ok => "ok",
        StageStatus::Failed => "failed",
        StageStatus::Skipped => "skipped",
    }
}

fn fields(trigger: &Trigger) -> (&'static str, Value) {
    match trigger {
        Trigger::DataSourceRefreshFailed(f) => (
            "data-source-refresh-failed",
            json!({"source": f.source, "error": f.error, "permanent": f.permanent,
                   "attempts": f.attempts, "rows_read": f.rows_read, "row": f.row, "field": f.field}),
        ),
        Trigger::DataSourceRefreshSucceeded(s) => (
            "data-source-refresh-succeeded",
            json!({"source": s.source, "rows_read": s.rows_read, "rows_rejected": s.rows_rejected,
                   "duration_ms": s.duration_ms}),
        ),
        Trigger::SegmentThresholdCrossed(s) => (
            "segment-threshold-crossed",
            json!({"segment": s.segment, "threshold": s.threshold, "previous": s.previous,
                   "current": s.current, "direction": s.direction.to_string()}),
        ),
        Trigger::MeasureThresholdCrossed(m) => (
            "measure-threshold-crossed",
            json!({"measure": m.measure, "threshold": m.threshold, "previous": m.previous,
                   "current": m.current, "direction": m.direction.to_string()}),
        ),
        Trigger::FullRefreshCompleted(f) => (
            "full-refresh-completed",
            json!({"succeeded": f.succeeded, "duration_ms": f.duration_ms,
                   "stages": f.stages.iter().map(|s| json!({"name": s.name, "status": status(s.status),
                        "rows": s.rows, "detail": s.detail})).collect::<Vec<_>>()}),
        ),
        Trigger::UnificationRefreshCompleted(u) => (
            "unification-refresh-completed",
            json!({"source_rows": u.source_rows, "profiles": u.profiles,
                   "matched_records": u.matched_records, "merges": u.merges}),
        ),
    }
}

impl Plugin for Recorder {
    fn on_event(event: Event) -> Result<(), String> {
        let (kind, mut body) = fields(&event.trigger);
        if kind == "unification-refresh-completed" {
            let seen = entities::items("Customer", entities::query())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.describe())?
                .len();
            body["customers_seen"] = json!(seen);
        }
        let mut text = json!({"id": event.id, "kind": kind, "fields": body});
        if let Some(label) = config::get("label") {
            text["label"] = json!(label);
        }
        let text = text.to_string();
        teams::post_text("events", &text).map_err(|e| e.describe())
    }
}

triggerfish_plugin_sdk::export_plugin!(Recorder);
