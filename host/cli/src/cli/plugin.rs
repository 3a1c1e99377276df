//! `triggerfish plugin keygen|sign|verify`: ed25519 signatures of plugin
//! components, checked by the host before it compiles them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use sha2::{Digest as _, Sha256};
use triggerfish_runtime::trust::{
    generate_key, parse_public_key, show_public_key, sign, signature_path, verify_line,
};

use super::term::outln;

/// `triggerfish plugin …`.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Make a signing key: KEY (secret, mode 0600) and KEY.pub.
    Keygen {
        /// Where to write the secret key; the public key goes to KEY.pub.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a component with a secret key: writes COMPONENT.sig.
    Sign {
        #[arg(long)]
        key: PathBuf,
        component: PathBuf,
    },
    /// Describe a component: size, sha256, signature, imports, exports, and
    /// whether this host can run it.
    Inspect { component: PathBuf },
    /// Check a component's signature; with --trust, that a given key made it.
    Verify {
        component: PathBuf,
        /// A trusted public key, `ed25519:<hex>` (repeatable).
        #[arg(long)]
        trust: Vec<String>,
    },
}

fn digest(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).into())
}

/// `triggerfish plugin`.
pub fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Keygen { out } => {
            let key = generate_key().map_err(anyhow::Error::msg)?;
            let mut file = {
                use std::os::unix::fs::OpenOptionsExt as _;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&out)
                    .with_context(|| {
                        format!(
                            "cannot create {} (an existing key is never overwritten)",
                            out.display()
                        )
                    })?
            };
            writeln!(file, "{}", hex::encode(key.to_bytes()))?;
            let public = show_public_key(&key.verifying_key());
            let mut pub_path = out.as_os_str().to_owned();
            pub_path.push(".pub");
            std::fs::write(&pub_path, format!("{public}\n"))?;
            outln!("secret key: {} (keep it private)", out.display());
            outln!("public key: {public}");
            outln!("trust it in triggerfish.toml: [host] trusted_keys = [\"{public}\"]");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Sign { key, component } => {
            let text = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the key {}", key.display()))?;
            let seed: [u8; 32] = hex::decode(text.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| {
                    format!("{} is not a secret key (64 hex digits)", key.display())
                })?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let sig = signature_path(&component);
            std::fs::write(&sig, sign(&key, &digest(&component)?))
                .with_context(|| format!("cannot write {}", sig.display()))?;
            outln!(
                "signed {} by {}: {}",
                component.display(),
                show_public_key(&key.verifying_key()),
                sig.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { component } => {
            let runtime = triggerfish_runtime::engine::Runtime::new(
                &triggerfish_runtime::engine::RuntimeOptions {
                    max_memory_bytes: 64 << 20,
                    cache_dir: None,
                },
            )?;
            let i = runtime.inspect(&component)?;
            outln!("{}", component.display());
            outln!("  size       {} bytes", i.size);
            outln!("  sha256     {}", i.sha256);
            let sig = signature_path(&component);
            let signature = match std::fs::read_to_string(&sig) {
                Err(_) => "none".to_owned(),
                Ok(line) => {
                    let digest: [u8; 32] = hex::decode(&i.sha256)
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 32]);
                    match verify_line(&line, &digest, &sig) {
                        Ok(k) => format!("good, by {}", show_public_key(&k)),
                        Err(e) => format!("BAD: {e}"),
                    }
                }
            };
            outln!("  signature  {signature}");
            outln!("  exports    {}", i.exports.join(", "));
            outln!("  imports    {}", i.imports.join(", "));
            match &i.fits {
                Ok(()) => outln!("  world      fits triggerfish:plugin@0.1.0 on this host"),
                Err(e) => outln!("  world      does NOT fit: {e}"),
            }
            Ok(if i.fits.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PluginCommand::Verify { component, trust } => {
            let trusted = trust
                .iter()
                .map(|k| parse_public_key(k).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let sig = signature_path(&component);
            let line = std::fs::read_to_string(&sig).with_context(|| {
                format!(
                    "{}: no signature ({} is missing)",
                    component.display(),
                    sig.display()
                )
            })?;
            let signer = verify_line(&line, &digest(&component)?, &sig)
                .map_err(|e| anyhow::anyhow!("{}: {e}", component.display()))?;
            let who = show_public_key(&signer);
            if !trusted.is_empty() && !trusted.contains(&signer) {
                bail!(
                    "{}: signed by {who}, which is not among the --trust keys",
                    component.display()
                );
            }
            outln!("{}: good signature by {who}", component.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
