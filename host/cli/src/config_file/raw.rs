//! The file as written: what serde reads before validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use triggerfish_data::insights::workspace::InsightsSection;

use super::{entities, ApiSection, EmailSection, HostSection, TeamsSection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) host: HostSection,
    #[serde(default)]
    pub(super) teams: TeamsSection,
    #[serde(default)]
    pub(super) email: Option<EmailSection>,
    #[serde(default)]
    pub(super) plugins: Vec<RawPlugin>,
    #[serde(default)]
    pub(super) insights: Option<InsightsSection>,
    #[serde(default)]
    pub(super) api: Option<ApiSection>,
    #[serde(default)]
    pub(super) cluster: Option<crate::cluster::config::ClusterSection>,
    #[serde(default)]
    pub(super) entities: Vec<entities::RawEntity>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrants {
    #[serde(default)]
    pub(super) teams: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) email_groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) email_domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) entities: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) entities_write: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) outbound_hosts: Vec<Spanned<String>>,
}

pub(super) fn plain(v: &[Spanned<String>]) -> Vec<String> {
    v.iter().map(|s| s.get_ref().clone()).collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) timeout_ms: Option<Spanned<u64>>,
    pub(super) memory_mib: Option<Spanned<u64>>,
    pub(super) entity_calls_per_minute: Option<Spanned<u32>>,
    pub(super) entity_calls_window_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) name: Spanned<String>,
    pub(super) component: Spanned<PathBuf>,
    #[serde(default)]
    pub(super) triggers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) grants: RawGrants,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) config: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) when: RawWhen,
    #[serde(default)]
    pub(super) retry: RawRetry,
    #[serde(default)]
    pub(super) concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) sha256: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWhen {
    #[serde(default)]
    pub(super) source: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) segment: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) measure: Vec<Spanned<String>>,
    pub(super) direction: Option<Spanned<String>>,
    pub(super) permanent: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    /// Retries after the first attempt; 0 for none.
    pub(super) attempts: Option<Spanned<u32>>,
    pub(super) first_wait: Option<Spanned<String>>,
    pub(super) max_wait: Option<Spanned<String>>,
}
