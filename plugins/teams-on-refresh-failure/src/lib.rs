//! On `data-source-refresh-failed`, post an Adaptive Card with the source, the
//! error and whether the failure is permanent to a Teams channel
//! (config `channel`, default `ops`).

use serde_json::json;
use triggerfish_plugin_sdk::{config, log, teams, DataSourceRefreshFailed, Event, Plugin, Trigger};

struct TeamsOnRefreshFailure;

impl Plugin for TeamsOnRefreshFailure {
    fn on_event(event: Event) -> Result<(), String> {
        let Trigger::DataSourceRefreshFailed(failure) = event.trigger else {
            return Ok(());
        };
        let channel = config::get_or("channel", "ops");
        log::info(&format!(
            "source '{}' failed ({}): posting a card to channel '{channel}'",
            failure.source,
            if failure.permanent {
                "permanent"
            } else {
                "retries exhausted"
            }
        ));
        teams::post_card(&channel, &card(&failure, &event.occurred_at)).map_err(|e| {
            let why = format!("posting to '{channel}': {}", e.describe());
            log::error(&why);
            why
        })
    }
}

fn card(f: &DataSourceRefreshFailed, at: &str) -> serde_json::Value {
    let mut facts = vec![
        json!({"title": "Source", "value": f.source}),
        json!({"title": "Error", "value": f.error}),
        json!({"title": "Permanent", "value": if f.permanent { "yes" } else { "no (retries exhausted)" }}),
        json!({"title": "Attempts", "value": f.attempts.to_string()}),
        json!({"title": "Rows read", "value": f.rows_read.to_string()}),
    ];
    if let Some(row) = f.row {
        facts.push(json!({"title": "Row", "value": row.to_string()}));
    }
    if let Some(field) = &f.field {
        facts.push(json!({"title": "Field", "value": field}));
    }
    facts.push(json!({"title": "When", "value": at}));
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": format!("Data source refresh failed: {}", f.source),
                "weight": "Bolder",
                "size": "Medium",
                "color": "Attention",
                "wrap": true
            },
            { "type": "FactSet", "facts": facts }
        ]
    })
}

triggerfish_plugin_sdk::export_plugin!(TeamsOnRefreshFailure);
