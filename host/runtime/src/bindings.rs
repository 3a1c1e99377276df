//! Host-side bindings for the `triggerfish:plugin@0.1.1` world. The linker
//! matches `0.1.x` semver-compatibly, so components built against `0.1.0`
//! (which lacks the partition, write and status functions) load too.

/// The WIT package this host serves.
pub const WORLD_PACKAGE: &str = "triggerfish:plugin@0.1.1";

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    imports: {
        "triggerfish:plugin/entities": async | trappable,
        default: async,
    },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::triggerfish::plugin::types::{
    DataSourceRefreshFailed, DataSourceRefreshSucceeded, Direction, Error, Event,
    FullRefreshCompleted, MeasureThresholdCrossed, QueryError, SegmentThresholdCrossed,
    StageStatus, StageSummary, Trigger, UnificationRefreshCompleted,
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_constant_is_the_wit_files() {
        let wit = include_str!("../../../wit/plugin.wit");
        assert!(wit.contains(&format!("package {};", super::WORLD_PACKAGE)));
    }
}
