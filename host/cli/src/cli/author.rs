//! `triggerfish plugin new|build|test`: the plugin author's loop. `test`
//! fires each fixture at the built component in outbox mode and compares
//! what it posted and emailed with `fixtures/NAME.expected.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_package::build::{build, BUILD_DIR};
use triggerfish_package::manifest::{Language, Manifest};
use triggerfish_runtime::grants::{Grants, Origin};
use triggerfish_runtime::settings::{
    ChannelSettings, DeliveryMode, EmailSettings, Limits, PluginConfig, Settings, TlsMode,
};
use triggerfish_runtime::{Host, Select};

use super::term::{errln, outln};

/// Fixture files read by `plugin test`, at most.
pub const MAX_FIXTURES: usize = 200;
/// Largest fixture or expected file read.
pub const MAX_FIXTURE_BYTES: u64 = 1024 * 1024;
/// The domain of the stand-in addresses of requested email groups.
pub const TEST_EMAIL_DOMAIN: &str = "example.invalid";

/// `plugin new`.
pub fn new(lang: Language, name: &str, parent: &Path) -> anyhow::Result<ExitCode> {
    let dir = triggerfish_package::scaffold::new(lang, name, parent)?;
    outln!("created {} ({lang})", dir.display());
    outln!("next:");
    if lang == Language::Js {
        outln!("  (cd {} && npm install)", dir.display());
    }
    outln!("  triggerfish plugin build {}", dir.display());
    outln!("  triggerfish plugin test --bless {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `plugin build`.
pub fn build_cmd(dir: &Path) -> anyhow::Result<ExitCode> {
    let m = Manifest::load(dir)?;
    errln!("building {} {} ({})…", m.name, m.version, m.language);
    let built = build(dir)?;
    outln!(
        "built {} ({} bytes, {:.1} MiB) in {:.1} s",
        built.component.display(),
        built.bytes,
        built.bytes as f64 / (1024.0 * 1024.0),
        built.took.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The built component of the plugin in `dir`.
pub fn built_component(dir: &Path, m: &Manifest) -> anyhow::Result<PathBuf> {
    let path = dir.join(BUILD_DIR).join(format!("{}.wasm", m.name));
    if !path.is_file() {
        bail!(
            "{} is not built yet ({} is missing): run `triggerfish plugin build {}` first",
            m.name,
            path.display(),
            dir.display()
        );
    }
    Ok(path)
}

/// Settings that grant exactly what the manifest requests, all in outbox mode.
fn test_settings(
    m: &Manifest,
    component: PathBuf,
    state: &Path,
    config: BTreeMap<String, String>,
) -> anyhow::Result<Settings> {
    let mut s = Settings::new(
        PathBuf::from(format!("{} (plugin test)", m.name)),
        state.to_owned(),
    );
    // Compiled code is cached per user (content-addressed, digest-checked),
    // so a second run of a large component does not compile it again.
    s.cache_dir = Some(super::registry::user_cache().join("compiled"));
    for channel in &m.grants.teams {
        s.teams.insert(
            channel.clone(),
            ChannelSettings {
                mode: Some(DeliveryMode::Outbox),
                ..Default::default()
            },
        );
    }
    let groups = m
        .grants
        .email_groups
        .iter()
        .map(|g| (g.clone(), vec![format!("{g}@{TEST_EMAIL_DOMAIN}")]))
        .collect();
    s.email = Some(EmailSettings {
        mode: Some(DeliveryMode::Outbox),
        smtp_host: None,
        smtp_port: None,
        tls: TlsMode::None,
        from: format!("Triggerfish <triggerfish@{TEST_EMAIL_DOMAIN}>"),
        username_env: None,
        password_env: None,
        groups,
    });
    let outbound_hosts = m
        .grants
        .outbound_hosts
        .iter()
        .map(|h| Origin::parse(h).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    s.plugins.push(PluginConfig {
        name: m.name.clone(),
        component,
        triggers: TriggerKind::ALL.to_vec(),
        grants: Grants {
            teams: m.grants.teams.clone(),
            email_groups: m.grants.email_groups.clone(),
            email_domains: m.grants.email_domains.clone(),
            entities: m.grants.entities.clone(),
            entities_write: m.grants.entities_write.clone(),
            outbound_hosts,
        },
        limits: Limits::default(),
        config,
        when: Default::default(),
        retry: Default::default(),
        concurrency: 1,
        sha256: None,
    });
    Ok(s)
}

/// One fixture: `{"trigger": KIND, "payload": {...}, "config": {...}}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    trigger: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

fn read_small(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_FIXTURE_BYTES {
        bail!("{}: larger than {MAX_FIXTURE_BYTES} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The fixtures of a plugin, sorted by name.
fn fixtures(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let fdir = dir.join("fixtures");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&fdir)
        .with_context(|| {
            format!(
                "cannot list {} (plugin test fires the events in it)",
                fdir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.to_string_lossy().ends_with(".expected.json")
        })
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("{} has no fixtures (*.json events)", fdir.display());
    }
    if out.len() > MAX_FIXTURES {
        bail!("{} has more than {MAX_FIXTURES} fixtures", fdir.display());
    }
    Ok(out)
}

/// `plugin test [--bless]`.
pub async fn test(dir: &Path, bless: bool) -> anyhow::Result<ExitCode> {
    let m = Manifest::load(dir)?;
    let component = built_component(dir, &m)?;
    let mut failed = 0usize;
    let files = fixtures(dir)?;
    for file in &files {
        let label = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fixture: Fixture = serde_json::from_str(&read_small(file)?).with_context(|| {
            format!(
                "{}: not a fixture ({{\"trigger\": KIND, \"payload\": {{…}}}})",
                file.display()
            )
        })?;
        let kind: TriggerKind = fixture
            .trigger
            .parse()
            .with_context(|| format!("{}: key `trigger`", file.display()))?;
        let payload = fixture.payload.as_ref().map(|p| p.to_string());
        let event = build_event(kind, payload.as_deref())
            .with_context(|| format!("{}: key `payload`", file.display()))?;
        let mut config = m.config.clone();
        config.extend(fixture.config);
        let state = tempfile::tempdir()?;
        let settings = test_settings(&m, component.clone(), state.path(), config)?;
        let host = Host::new(&settings, Select::All)?;
        let outcome = host.deliver(&m.name, &event).await?;
        let actual = observed(&outcome)?;
        let expected_path = file.with_extension("expected.json");
        if bless {
            let mut text = serde_json::to_string_pretty(&actual)?;
            text.push('\n');
            std::fs::write(&expected_path, text)
                .with_context(|| format!("cannot write {}", expected_path.display()))?;
            outln!("blessed  {label}: {}", expected_path.display());
            continue;
        }
        let expected: serde_json::Value = match read_small(&expected_path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", expected_path.display()))?,
            Err(_) => {
                failed += 1;
                outln!(
                    "FAILED   {label}: no {} yet; run `triggerfish plugin test --bless {}` to record what the plugin does, then review it",
                    expected_path.display(),
                    dir.display()
                );
                continue;
            }
        };
        if expected == actual {
            outln!("ok       {label}");
        } else {
            failed += 1;
            outln!(
                "FAILED   {label}: the plugin did not do what {} expects",
                expected_path.display()
            );
            for line in diff(&expected, &actual) {
                outln!("         {line}");
            }
        }
    }
    if bless {
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} fixture(s), {} failed", files.len(), failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a delivery did, in a form that compares across runs: the result,
/// each Teams post as JSON, each email as its headers and parts.
fn observed(outcome: &triggerfish_runtime::Outcome) -> anyhow::Result<serde_json::Value> {
    let mut teams = Vec::new();
    let mut email = Vec::new();
    for d in &outcome.record.deliveries {
        let Some(content) = &d.content else { continue };
        match d.capability {
            "teams" => teams.push(serde_json::json!({
                "channel": d.target,
                "body": serde_json::from_str::<serde_json::Value>(content).unwrap_or(content.clone().into()),
            })),
            "email" => email.push(parse_email(content)?),
            _ => {}
        }
    }
    Ok(serde_json::json!({
        "result": match &outcome.result {
            Ok(()) => serde_json::json!("ok"),
            Err(f) => serde_json::json!({"error": f.to_string()}),
        },
        "teams": teams,
        "email": email,
    }))
}

fn parse_email(eml: &str) -> anyhow::Result<serde_json::Value> {
    let mail = mailparse::parse_mail(eml.as_bytes()).context("the outbox email does not parse")?;
    let header = |name: &str| mailparse::MailHeaderMap::get_first_value(&mail.headers[..], name);
    let mut text = None;
    let mut html = None;
    let mut parts = vec![&mail];
    while let Some(p) = parts.pop() {
        match p.ctype.mimetype.as_str() {
            "text/plain" => text = Some(p.get_body()?.replace("\r\n", "\n")),
            "text/html" => html = Some(p.get_body()?.replace("\r\n", "\n")),
            _ => parts.extend(p.subparts.iter()),
        }
    }
    Ok(serde_json::json!({
        "from": header("From"),
        "to": header("To"),
        "cc": header("Cc"),
        "subject": header("Subject"),
        "text": text,
        "html": html,
    }))
}

/// The paths where two JSON values differ, with both sides.
fn diff(expected: &serde_json::Value, actual: &serde_json::Value) -> Vec<String> {
    fn walk(path: String, e: &serde_json::Value, a: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::{Array, Object};
        match (e, a) {
            (Object(e), Object(a)) => {
                let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    walk(
                        format!("{path}.{k}"),
                        e.get(k).unwrap_or(&null),
                        a.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            (Array(e), Array(a)) if e.len() == a.len() => {
                for (i, (e, a)) in e.iter().zip(a).enumerate() {
                    walk(format!("{path}[{i}]"), e, a, out);
                }
            }
            _ if e != a => out.push(format!("{path}: expected {e}, got {a}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("$".into(), expected, actual, &mut out);
    out.truncate(20);
    out
}
