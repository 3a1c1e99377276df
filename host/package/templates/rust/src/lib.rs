//! {{name}}: a Triggerfish plugin. On every event it posts an Adaptive Card
//! to the Teams channel named by config `channel` (default `ops`).

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use exports::triggerfish::plugin::handler::Guest;
use triggerfish::plugin::types::{Event, Trigger};
use triggerfish::plugin::{config, log, teams};

struct Plugin;

impl Guest for Plugin {
    fn on_event(event: Event) -> Result<(), String> {
        let channel = config::get("channel").unwrap_or_else(|| "ops".to_owned());
        let kind = trigger_name(&event.trigger);
        log::log(log::Level::Info, &format!("{kind} {}", event.id));
        let card = serde_json::json!({
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                { "type": "TextBlock", "text": format!("Triggerfish: {kind}"), "weight": "Bolder", "wrap": true },
                { "type": "FactSet", "facts": [
                    { "title": "Event", "value": event.id },
                    { "title": "When", "value": event.occurred_at }
                ]}
            ]
        });
        teams::post_message(&channel, &teams::Message::Card(card.to_string()))
            .map_err(|e| format!("posting to '{channel}': {e:?}"))
    }
}

fn trigger_name(t: &Trigger) -> &'static str {
    match t {
        Trigger::DataSourceRefreshFailed(_) => "data-source-refresh-failed",
        Trigger::DataSourceRefreshSucceeded(_) => "data-source-refresh-succeeded",
        Trigger::SegmentThresholdCrossed(_) => "segment-threshold-crossed",
        Trigger::MeasureThresholdCrossed(_) => "measure-threshold-crossed",
        Trigger::FullRefreshCompleted(_) => "full-refresh-completed",
        Trigger::UnificationRefreshCompleted(_) => "unification-refresh-completed",
    }
}

export!(Plugin);
