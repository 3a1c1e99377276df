//! Pages through an entity (config `entity`, default `Customer`) with the SDK
//! item iterator, which follows `next-skip`, and posts the count to a Teams
//! channel (config `channel`, default `ops`). Config `filter` and `page_size`
//! are passed through as `$filter` and `$top`.

use triggerfish_plugin_sdk::{config, entities, log, teams, Event, Plugin};

struct CountCustomers;

impl Plugin for CountCustomers {
    fn on_event(_event: Event) -> Result<(), String> {
        let entity = config::get_or("entity", "Customer");
        let channel = config::get_or("channel", "ops");
        let mut query = entities::query();
        query.filter = config::get("filter");
        query.top = match config::get("page_size") {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| format!("page_size '{s}' is not a number"))?,
            ),
            None => Some(1000),
        };
        // Only the key is needed to count; ask for nothing else.
        query.select = config::get("key").map(|k| vec![k]);
        let mut count: u64 = 0;
        for item in entities::items(&entity, query) {
            item.map_err(|e| format!("reading {entity}: {}", e.describe()))?;
            count += 1;
        }
        log::info(&format!("{entity}: {count} items"));
        teams::post_text(&channel, &format!("{entity} count: {count}"))
            .map_err(|e| format!("posting to '{channel}': {}", e.describe()))
    }
}

triggerfish_plugin_sdk::export_plugin!(CountCustomers);
