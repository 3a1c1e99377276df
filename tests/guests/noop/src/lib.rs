//! The smallest plugin: reads one config key and returns `ok`. The per-event
//! benchmark runs it through the host and through bare wasmtime; it imports
//! nothing beyond the SDK's world, so both linkers can serve it.

use triggerfish_plugin_sdk::{config, Event, Plugin};

struct Noop;

impl Plugin for Noop {
    fn on_event(_event: Event) -> Result<(), String> {
        match config::get("mode").as_deref() {
            Some("noop") | None => Ok(()),
            Some(other) => Err(format!("unknown mode '{other}'")),
        }
    }
}

triggerfish_plugin_sdk::export_plugin!(Noop);
