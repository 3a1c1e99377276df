//! Sharing plugins: pack, sign, push to and pull from a real OCI registry
//! (Debian's `docker-registry` on loopback), and the refusals: a tampered
//! layer, a wrong digest, a bad and an untrusted signature.

use crate::support;

use std::path::{Path, PathBuf};

use support::{
    arg, build_plugin, copy_plugin, lit, root, tempdir, triggerfish, Registry, Run, TeamsStub,
};

/// A packed, signed C plugin pushed to `reference`; returns (artefact,
/// public key, manifest digest).
struct Published {
    artefact: PathBuf,
    public_key: String,
    digest: String,
}

fn publish(work: &Path, reference: &str) -> Published {
    let dir = copy_plugin(&root().join("plugins/c/teams-on-refresh-failure"), work);
    build_plugin(&dir, &[]);
    let artefact = work.join("teams.wasm");
    triggerfish(&["plugin", "pack", arg(&dir), "--out", arg(&artefact)], &[]).assert_ok("pack");
    let key = work.join("publisher.key");
    let keygen = triggerfish(&["plugin", "keygen", "--out", arg(&key)], &[]);
    keygen.assert_ok("keygen");
    let public_key = std::fs::read_to_string(work.join("publisher.key.pub"))
        .unwrap()
        .trim()
        .to_owned();
    triggerfish(&["plugin", "sign", "--key", arg(&key), arg(&artefact)], &[]).assert_ok("sign");
    let push = triggerfish(&["plugin", "push", arg(&artefact), reference], &[]);
    push.assert_ok("push");
    let digest = push
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("digest  "))
        .unwrap_or_else(|| panic!("no digest in: {}", push.stdout))
        .to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    Published {
        artefact,
        public_key,
        digest,
    }
}

fn config(dir: &Path, component: &str, trusted: &str, webhook: &str, extra: &str) -> PathBuf {
    let path = dir.join("triggerfish.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[host]
state_dir = {state}
trusted_keys = ["{trusted}"]
require_signatures = true

[teams.channels.ops]
webhook_url = "{webhook}"
[teams.channels.sales]
mode = "outbox"

[[plugins]]
name = "teams-alert"
component = "{component}"
triggers = ["data-source-refresh-failed"]
{extra}
[plugins.grants]
teams = ["ops", "sales"]
"#,
            state = lit(&dir.join("state")),
        ),
    )
    .unwrap();
    path
}

fn fire(config: &Path) -> Run {
    triggerfish(
        &[
            "fire",
            "--config",
            arg(config),
            "--plugin",
            "teams-alert",
            "--event",
            "data-source-refresh-failed",
            "--payload",
            r#"{"source":"crm-contacts","error":"row 17: bad date","permanent":true}"#,
        ],
        &[],
    )
}

#[test]
fn a_signed_plugin_goes_through_a_real_registry_and_runs_verified() {
    let registry = Registry::start();
    let work = tempdir();
    let tag = registry.reference("plugins/teams-alert:0.1.0");
    let p = publish(work.path(), &tag);
    let stub = TeamsStub::start();

    // By tag, then pinned by digest (served from the cache, re-verified).
    for (i, component) in [tag.clone(), format!("{tag}@{}", p.digest)]
        .iter()
        .enumerate()
    {
        let dir = work.path().join(format!("host{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = config(&dir, component, &p.public_key, &stub.url("/workflows"), "");
        let run = fire(&cfg);
        run.assert_ok(&format!("fire with component = {component}"));
        assert_eq!(stub.received().len(), i + 1);

        let plugins = triggerfish(&["plugins", "--config", arg(&cfg)], &[]);
        plugins.assert_ok("plugins");
        let out = &plugins.stdout;
        assert!(out.contains(&format!("component  {component}")), "{out}");
        assert!(
            out.contains("manifest   teams-on-refresh-failure 0.1.0 (c)"),
            "{out}"
        );
        assert!(out.contains("requested  teams: ops"), "{out}");
        assert!(
            out.contains("warning    grants more than the plugin asked for: teams 'sales'"),
            "{out}"
        );
        assert!(out.contains("check      ok"), "{out}");
    }
    let card = &stub.received()[0].body;
    let text = card.to_string();
    assert!(text.contains("crm-contacts"), "{text}");

    // `plugin pull` and `plugin inspect` on the reference.
    let home = work.path().join("home");
    let cache = home.join(".cache");
    let home_env = [("HOME", arg(&home)), ("XDG_CACHE_HOME", arg(&cache))];
    let out = work.path().join("pulled.wasm");
    let pull = triggerfish(&["plugin", "pull", &tag, "--out", arg(&out)], &home_env);
    pull.assert_ok("pull");
    assert!(
        cache.join("triggerfish/oci").is_dir(),
        "pulled into XDG_CACHE_HOME"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&p.artefact).unwrap()
    );
    let verify = triggerfish(
        &["plugin", "verify", arg(&out), "--trust", &p.public_key],
        &[],
    );
    verify.assert_ok("verify the pulled copy");
    let inspect = triggerfish(&["plugin", "inspect", &tag], &home_env);
    inspect.assert_ok("inspect");
    for want in [
        "manifest   teams-on-refresh-failure 0.1.0 (c)",
        "requests   teams: ops",
        "triggers   data-source-refresh-failed",
        "signature  good, by ed25519:",
        "world      fits triggerfish:plugin@0.1.1",
    ] {
        assert!(inspect.stdout.contains(want), "{want}:\n{}", inspect.stdout);
    }
}

#[test]
fn tampered_layers_wrong_digests_and_bad_signatures_are_refused_by_name() {
    let registry = Registry::start();
    let work = tempdir();
    let tag = registry.reference("plugins/teams-alert:0.1.0");
    let p = publish(work.path(), &tag);
    let stub = TeamsStub::start();
    let webhook = stub.url("/workflows");
    let mut n = 0;
    let mut refused = |component: &str, extra: &str, want: &[&str]| {
        n += 1;
        let dir = work.path().join(format!("host{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = config(&dir, component, &p.public_key, &webhook, extra);
        let run = fire(&cfg);
        assert_ne!(run.code, 0, "{component} was accepted:\n{}", run.stdout);
        for w in want.iter().chain(&["plugin 'teams-alert'"]) {
            assert!(
                run.stderr.contains(w),
                "{component}: wanted {w:?} in:\n{}",
                run.stderr
            );
        }
    };

    // A digest that is not the artefact's.
    let zeros = format!("sha256:{}", "0".repeat(64));
    refused(
        &format!("{tag}@{zeros}"),
        "",
        &["cannot fetch the manifest"],
    );
    // A component pin that does not match.
    refused(
        &tag,
        &format!("sha256 = \"{}\"", "ab".repeat(32)),
        &["but the config pins abab"],
    );

    // Signed by a key the host does not trust.
    let other = work.path().join("other.key");
    triggerfish(&["plugin", "keygen", "--out", arg(&other)], &[]).assert_ok("keygen");
    let stranger = work.path().join("stranger.wasm");
    std::fs::copy(&p.artefact, &stranger).unwrap();
    triggerfish(
        &["plugin", "sign", "--key", arg(&other), arg(&stranger)],
        &[],
    )
    .assert_ok("sign");
    let untrusted = registry.reference("plugins/teams-alert:untrusted");
    triggerfish(&["plugin", "push", arg(&stranger), &untrusted], &[]).assert_ok("push");
    refused(&untrusted, "", &["which is not among the trusted keys"]);

    // A forged signature: the manifest re-put with one signature digit changed.
    let forged = registry.reference("plugins/teams-alert:forged");
    forge_signature(&registry, "plugins/teams-alert", "0.1.0", "forged");
    refused(&forged, "", &["does not match the component"]);

    // A push of a component whose signature does not match is refused too.
    std::fs::write(
        work.path().join("stranger.wasm.sig"),
        std::fs::read_to_string(work.path().join("teams.wasm.sig"))
            .unwrap()
            .replace('a', "b"),
    )
    .unwrap();
    let push = triggerfish(&["plugin", "push", arg(&stranger), &untrusted], &[]);
    assert_ne!(push.code, 0, "{}", push.stdout);
    assert!(push.stderr.contains("not pushed"), "{}", push.stderr);

    // The layer's bytes changed in the registry's storage.
    let layer_digest = {
        let bytes = std::fs::read(&p.artefact).unwrap();
        format!("sha256:{}", sha256_hex(&bytes))
    };
    let blob = registry.blob_path(&layer_digest);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    refused(&tag, "", &["does not match its digest"]);
    assert_eq!(stub.received().len(), 0, "no refused plugin ran");
}

/// Re-put a manifest under a new tag with its signature annotation altered,
/// through the registry's HTTP API.
fn forge_signature(registry: &Registry, repo: &str, from: &str, to: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let media = "application/vnd.oci.image.manifest.v1+json";
        let url = |tag: &str| format!("http://{}/v2/{repo}/manifests/{tag}", registry.addr);
        let mut manifest: serde_json::Value = client
            .get(url(from))
            .header("Accept", media)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sig = manifest["annotations"]["dev.triggerfish.signature"]
            .as_str()
            .unwrap()
            .to_owned();
        let last = sig.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &sig[..sig.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        manifest["annotations"]["dev.triggerfish.signature"] = flipped.into();
        let put = client
            .put(url(to))
            .header("Content-Type", media)
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{:?}", put.text().await);
    });
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
