//! `triggerfish plugin …`: the author's loop (new, build, test), sharing
//! (pack, push, pull) and trust (keygen, sign, verify, inspect).

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
use super::{author, registry};
use triggerfish_package::manifest::Language;

/// `triggerfish plugin …`.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin: WIT, a handler that posts a card, plugin.toml,
    /// README and a test fixture.
    New {
        /// rust, python, js or c.
        #[arg(long)]
        lang: Language,
        /// The plugin's name (lower-case letters, digits, '-').
        name: String,
        /// Folder to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build the plugin with its language's toolchain: DIR/build/NAME.wasm.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Fire the fixtures (DIR/fixtures/*.json) at the built plugin in outbox
    /// mode and compare what it posted and emailed with the .expected.json files.
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Record what the plugin did as the expected files.
        #[arg(long)]
        bless: bool,
    },
    /// Pack the built component with its manifest into one artefact:
    /// DIR/dist/NAME-VERSION.wasm.
    Pack {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Pack this component instead of DIR/build/NAME.wasm.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Where to write the artefact.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Push an artefact (and its signature) to an OCI registry:
    /// oci://HOST[:PORT]/REPOSITORY:TAG.
    Push {
        component: PathBuf,
        reference: String,
    },
    /// Pull an artefact from an OCI registry, verifying every digest.
    Pull {
        reference: String,
        /// Copy the component (and its .sig) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
    /// Describe a component (a file or an oci:// reference): size, sha256,
    /// signature, manifest, requested grants, imports, exports, and whether
    /// this host can run it.
    Inspect { component: String },
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
pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New { lang, name, dir } => author::new(lang, &name, &dir),
        PluginCommand::Build { dir } => {
            tokio::task::spawn_blocking(move || author::build_cmd(&dir)).await?
        }
        PluginCommand::Test { dir, bless } => author::test(&dir, bless).await,
        PluginCommand::Pack {
            dir,
            component,
            out,
        } => registry::pack(&dir, component, out),
        PluginCommand::Push {
            component,
            reference,
        } => registry::push(&component, &reference).await,
        PluginCommand::Pull { reference, out } => registry::pull(&reference, out).await,
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
            let component = registry::local_or_pulled(&component).await?;
            let i = registry::inspector()?.inspect(&component)?;
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
            let bytes = std::fs::read(&component)
                .with_context(|| format!("cannot read {}", component.display()))?;
            match triggerfish_package::section::read(&bytes) {
                Ok(Some(m)) => {
                    outln!(
                        "  manifest   {} {} ({}): {}",
                        m.name,
                        m.version,
                        m.language,
                        m.description
                    );
                    outln!("  targets    {}", m.world);
                    outln!("  triggers   {}", m.triggers.join(", "));
                    outln!("  requests   {}", registry::requested_text(&m));
                }
                Ok(None) => outln!("  manifest   none (not packed)"),
                Err(e) => outln!("  manifest   BAD: {e}"),
            }
            outln!("  exports    {}", i.exports.join(", "));
            outln!("  imports    {}", i.imports.join(", "));
            match &i.fits {
                Ok(()) => outln!(
                    "  world      fits {} on this host",
                    triggerfish_runtime::bindings::WORLD_PACKAGE
                ),
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
