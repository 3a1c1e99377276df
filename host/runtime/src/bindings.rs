//! Host-side bindings for the `triggerfish:plugin@0.1.0` world.

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
