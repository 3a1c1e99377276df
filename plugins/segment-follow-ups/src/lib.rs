//! On `segment-threshold-crossed`, reads the segment's members and writes
//! one follow-up item per member into the writable entity named by config
//! `entity` (default `FollowUp`), then reports how many it wrote.
//!
//! The item key is `<event id>:<customer id>`: a redelivered run repeats the
//! same creates, and the host hands back what the first attempt stored.
//! The entity needs the fields `Id` (key), `CustomerId`, `Segment`,
//! `Reason` and `Status`.

use serde_json::json;
use triggerfish_plugin_sdk::entities::{self, Query};
use triggerfish_plugin_sdk::{config, status, Event, Plugin, Trigger};

struct SegmentFollowUps;

impl Plugin for SegmentFollowUps {
    fn on_event(event: Event) -> Result<(), String> {
        let Trigger::SegmentThresholdCrossed(s) = event.trigger else {
            return Ok(());
        };
        let entity = config::get_or("entity", "FollowUp");
        let reason = format!(
            "segment '{}' went {} through {} ({} -> {})",
            s.segment, s.direction, s.threshold, s.previous, s.current
        );
        let members = Query {
            filter: Some(format!("Segment eq '{}'", s.segment.replace('\'', "''"))),
            select: Some(vec!["CustomerId".into()]),
            orderby: None,
            top: Some(500),
            skip: None,
        };
        let mut written = 0u64;
        for member in entities::items("SegmentMember", members) {
            let member = member.map_err(|e| format!("reading SegmentMember: {}", e.describe()))?;
            let customer = member["CustomerId"].as_str().unwrap_or_default();
            let item = json!({
                "Id": format!("{}:{customer}", event.id),
                "CustomerId": customer,
                "Segment": s.segment,
                "Reason": reason,
                "Status": "open",
            });
            entities::create(&entity, &item)
                .map_err(|e| format!("creating a {entity} for {customer}: {}", e.describe()))?;
            written += 1;
        }
        status::report(
            status::StatusLevel::Success,
            &format!("wrote {written} follow-ups to {entity}"),
            Some(&json!({"entity": entity, "segment": s.segment, "written": written})),
        )
        .map_err(|e| e.describe())
    }
}

triggerfish_plugin_sdk::export_plugin!(SegmentFollowUps);
