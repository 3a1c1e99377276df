//! On `segment-threshold-crossed`, email the data owners (config `group`,
//! default `data-owners`) with the segment, threshold, previous and current size.

use triggerfish_plugin_sdk::email::{self, Message};
use triggerfish_plugin_sdk::{config, log, Event, Plugin, Trigger};

struct EmailSegmentOwners;

impl Plugin for EmailSegmentOwners {
    fn on_event(event: Event) -> Result<(), String> {
        let Trigger::SegmentThresholdCrossed(s) = event.trigger else {
            return Ok(());
        };
        let group = config::get_or("group", "data-owners");
        log::info(&format!(
            "segment '{}' crossed {}: emailing group '{group}'",
            s.segment, s.threshold
        ));
        let subject = format!(
            "Segment \"{}\" crossed {} ({}): {} -> {}",
            s.segment, s.threshold, s.direction, s.previous, s.current
        );
        let text = format!(
            "The segment \"{}\" crossed its threshold.\n\n\
             Threshold: {}\nDirection: {}\nPrevious size: {}\nCurrent size: {}\n\
             When: {}\nEvent: {}\n",
            s.segment, s.threshold, s.direction, s.previous, s.current, event.occurred_at, event.id
        );
        let html = format!(
            "<p>The segment <b>{}</b> crossed its threshold.</p>\
             <table><tr><td>Threshold</td><td>{}</td></tr><tr><td>Direction</td><td>{}</td></tr>\
             <tr><td>Previous size</td><td>{}</td></tr><tr><td>Current size</td><td>{}</td></tr></table>",
            escape(&s.segment),
            s.threshold,
            s.direction,
            s.previous,
            s.current
        );
        email::send(&Message {
            to: vec![group.clone()],
            cc: Vec::new(),
            subject,
            text,
            html: Some(html),
        })
        .map_err(|e| format!("emailing '{group}': {}", e.describe()))
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

triggerfish_plugin_sdk::export_plugin!(EmailSegmentOwners);
