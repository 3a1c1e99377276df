//! `triggerfish plugin pack|push|pull`: one artefact per plugin (the
//! component with its manifest packed in), shared through OCI registries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};
use triggerfish_package::manifest::Manifest;
use triggerfish_package::oci::{self, OciRef};
use triggerfish_package::section;
use triggerfish_runtime::engine::{Inspection, Runtime, RuntimeOptions};
use triggerfish_runtime::trust::{show_public_key, signature_path, verify_line};

use super::author::built_component;
use super::term::{errln, outln};

/// Where packed artefacts go, under the plugin folder.
pub const DIST_DIR: &str = "dist";

/// A runtime for inspecting components (no cache, modest memory).
pub fn inspector() -> anyhow::Result<Runtime> {
    Ok(Runtime::new(&RuntimeOptions {
        max_memory_bytes: 64 << 20,
        cache_dir: None,
    })?)
}

/// The cache for pulls made outside a configuration:
/// `$XDG_CACHE_HOME/triggerfish` (when absolute, as the XDG spec asks),
/// else `~/.cache/triggerfish`.
pub fn user_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("triggerfish")
}

/// `plugin pack DIR`.
pub fn pack(
    dir: &Path,
    component: Option<PathBuf>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let m = Manifest::load(dir)?;
    let component = match component {
        Some(c) => c,
        None => match built_component(dir, &m) {
            Ok(c) => c,
            Err(_) => {
                errln!("{} is not built yet; building it first…", m.name);
                triggerfish_package::build::build(dir)?.component
            }
        },
    };
    let inspection = inspector()?.inspect(&component)?;
    if let Err(why) = &inspection.fits {
        bail!(
            "{}: {} does not fit this host, so it is not packed: {why}",
            m.name,
            component.display()
        );
    }
    let bytes = std::fs::read(&component)
        .with_context(|| format!("cannot read {}", component.display()))?;
    let packed = section::pack(&bytes, &m).with_context(|| component.display().to_string())?;
    let out = out.unwrap_or_else(|| {
        dir.join(DIST_DIR)
            .join(format!("{}-{}.wasm", m.name, m.version))
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&out, &packed).with_context(|| format!("cannot write {}", out.display()))?;
    // A signature of the unpacked bytes would not match: drop a stale one.
    let _ = std::fs::remove_file(signature_path(&out));
    outln!("packed {} {} -> {}", m.name, m.version, out.display());
    outln!("  size     {} bytes", packed.len());
    outln!("  sha256   {}", hex::encode(Sha256::digest(&packed)));
    outln!("  world    {}", m.world);
    outln!(
        "  triggers {}",
        if m.triggers.is_empty() {
            "(none)".into()
        } else {
            m.triggers.join(", ")
        }
    );
    outln!("  requests {}", requested_text(&m));
    outln!(
        "sign it:   triggerfish plugin sign --key KEY {}",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The requested grants in one line.
pub fn requested_text(m: &Manifest) -> String {
    let parts: Vec<String> = m
        .grants
        .kinds()
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {}", v.join(", ")))
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join("; ")
    }
}

/// `plugin push FILE REF`.
pub async fn push(file: &Path, reference: &str) -> anyhow::Result<ExitCode> {
    let r = OciRef::parse(reference)?;
    if r.digest().is_some() {
        bail!("{r}: push to a tag (oci://HOST/REPO:TAG); the registry gives the digest");
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let sig_path = signature_path(file);
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(line) => {
            let key = verify_line(&line, &digest, &sig_path)
                .map_err(|e| anyhow::anyhow!("{}: not pushed: {e}", file.display()))?;
            errln!("signed by {}", show_public_key(&key));
            Some(line)
        }
        Err(_) => {
            errln!("warning: {} is not signed ({} is missing); hosts that require signatures will refuse it", file.display(), sig_path.display());
            None
        }
    };
    let manifest = section::read(&bytes).with_context(|| file.display().to_string())?;
    let inspection = inspector()?.inspect(file)?;
    if let Err(why) = &inspection.fits {
        bail!(
            "{}: does not fit this host, so it is not pushed: {why}",
            file.display()
        );
    }
    let mut annotations = BTreeMap::new();
    if let Some(m) = &manifest {
        annotations.insert("org.opencontainers.image.title".to_owned(), m.name.clone());
        annotations.insert(
            "org.opencontainers.image.version".to_owned(),
            m.version.clone(),
        );
        if !m.description.is_empty() {
            annotations.insert(
                "org.opencontainers.image.description".to_owned(),
                m.description.clone(),
            );
        }
    } else {
        errln!(
            "warning: {} carries no manifest (use `triggerfish plugin pack`)",
            file.display()
        );
    }
    let pushed = oci::push(
        &r,
        oci::Artefact {
            component: &bytes,
            signature: signature.as_deref(),
            annotations,
            component_info: component_info(&inspection, manifest.as_ref()),
        },
    )
    .await?;
    outln!("pushed {} to {r}", file.display());
    outln!("  digest  {pushed}");
    outln!("  pin it: component = \"{}\"", pinned(&r, &pushed));
    Ok(ExitCode::SUCCESS)
}

/// The reference pinned to a manifest digest.
fn pinned(r: &OciRef, digest: &str) -> String {
    let text = r.to_string();
    let base = text.split('@').next().unwrap_or(&text);
    // Keep the tag for readers; the digest is what is fetched.
    format!("{base}@{digest}")
}

/// The CNCF config's `component` object.
fn component_info(i: &Inspection, m: Option<&Manifest>) -> serde_json::Value {
    serde_json::json!({
        "target": m.map(|m| m.world.clone()),
        "imports": i.imports,
        "exports": i.exports,
    })
}

/// `plugin pull REF`.
pub async fn pull(reference: &str, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let r = OciRef::parse(reference)?;
    let p = oci::pull(&r, &user_cache()).await?;
    let target = match out {
        Some(out) => {
            std::fs::copy(&p.component, &out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            if p.signed {
                std::fs::copy(signature_path(&p.component), signature_path(&out))
                    .with_context(|| format!("cannot write {}", signature_path(&out).display()))?;
            }
            out
        }
        None => p.component.clone(),
    };
    outln!(
        "pulled {r}{}",
        if p.from_cache {
            " (from the cache)"
        } else {
            ""
        }
    );
    outln!("  digest     {}", p.digest);
    outln!("  component  {} ({})", target.display(), p.layer_digest);
    outln!(
        "  signature  {}",
        if p.signed {
            "present (checked when a host loads it)"
        } else {
            "none"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// For `plugin inspect`: a local file, or an `oci://` reference pulled first.
pub async fn local_or_pulled(what: &str) -> anyhow::Result<PathBuf> {
    if what.starts_with(oci::SCHEME) {
        let r = OciRef::parse(what)?;
        Ok(oci::pull(&r, &user_cache()).await?.component)
    } else {
        Ok(PathBuf::from(what))
    }
}

/// For `triggerfish plugins`: what the packed manifest requests beside what
/// the configuration grants, and a warning for each grant beyond the request.
pub fn requested_vs_granted(
    component: &Path,
    g: &triggerfish_runtime::grants::Grants,
) -> Vec<String> {
    let manifest = match std::fs::read(component).map(|b| section::read(&b)) {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => {
            return vec![
                "requested  (no manifest packed; `triggerfish plugin pack` adds one)".into(),
            ]
        }
        Ok(Err(e)) => return vec![format!("requested  BAD manifest: {e}")],
        Err(_) => return Vec::new(),
    };
    let mut lines = vec![
        format!(
            "manifest   {} {} ({})",
            manifest.name, manifest.version, manifest.language
        ),
        format!("requested  {}", requested_text(&manifest)),
    ];
    let granted = g.kinds();
    for ((kind, granted), (_, asked)) in granted.iter().zip(manifest.grants.kinds()) {
        let extra: Vec<&str> = granted
            .iter()
            .filter(|v| !asked.iter().any(|a| a == *v || a == "*"))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            lines.push(format!(
                "warning    grants more than the plugin asked for: {kind} {}",
                extra
                    .iter()
                    .map(|e| format!("'{e}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    lines
}
