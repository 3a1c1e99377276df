//! Whether a component may be loaded at all, checked on its bytes before it
//! is compiled: a pinned sha256, and an ed25519 signature by a trusted key.
//!
//! A signature lives next to the component, in `<component>.sig`, as one
//! line: `ed25519 <public key hex> <signature hex>`. What is signed is
//! [`SIGNED_CONTEXT`] followed by the component's sha256, so a signature
//! cannot be replayed for another purpose.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Prefix of every signed message.
pub const SIGNED_CONTEXT: &[u8] = b"triggerfish plugin component v1\0";
/// Largest signature file read.
pub const MAX_SIGNATURE_BYTES: u64 = 1024;

/// Why a component was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("its sha256 is {actual}, but the config pins {expected}")]
    PinMismatch { expected: String, actual: String },
    #[error("no signature ({sig} is missing) and the config requires one")]
    Unsigned { sig: PathBuf },
    #[error("signature {sig} is malformed: {why}")]
    Malformed { sig: PathBuf, why: String },
    #[error("signature {sig} does not match the component (altered after signing?)")]
    BadSignature { sig: PathBuf },
    #[error("signed by {key}, which is not among the trusted keys")]
    Untrusted { key: String },
}

/// A public key as written in configs: `ed25519:<64 hex digits>`.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let hex_part = text.strip_prefix("ed25519:").ok_or_else(|| {
        format!("'{text}' is not a public key (expected \"ed25519:\" and 64 hex digits)")
    })?;
    let bytes: [u8; 32] = hex::decode(hex_part)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!("'{text}' is not a public key (expected 64 hex digits after \"ed25519:\")")
        })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("'{text}' is not a valid ed25519 key: {e}"))
}

/// A public key written out: `ed25519:<hex>`.
pub fn show_public_key(key: &VerifyingKey) -> String {
    format!("ed25519:{}", hex::encode(key.as_bytes()))
}

/// Where a component's signature is kept.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn message(sha256: &[u8; 32]) -> Vec<u8> {
    let mut m = SIGNED_CONTEXT.to_vec();
    m.extend_from_slice(sha256);
    m
}

/// A fresh signing key from the operating system's randomness.
pub fn generate_key() -> Result<SigningKey, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The signature line for a component with this digest.
pub fn sign(key: &SigningKey, sha256: &[u8; 32]) -> String {
    let sig = key.sign(&message(sha256));
    format!(
        "ed25519 {} {}\n",
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(sig.to_bytes())
    )
}

/// Check a signature line against a digest; returns the signer's key.
pub fn verify_line(line: &str, sha256: &[u8; 32], sig: &Path) -> Result<VerifyingKey, TrustError> {
    let malformed = |why: &str| TrustError::Malformed {
        sig: sig.to_owned(),
        why: why.to_owned(),
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [algo, key, signature] = parts[..] else {
        return Err(malformed(
            "expected one line: ed25519 <key hex> <signature hex>",
        ));
    };
    if algo != "ed25519" {
        return Err(malformed(&format!(
            "unknown algorithm '{}'",
            crate::context::one_line(algo)
        )));
    }
    let key: [u8; 32] = hex::decode(key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("the key is not 64 hex digits"))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| malformed("the key is not a valid ed25519 key"))?;
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("the signature is not 128 hex digits"))?;
    key.verify(&message(sha256), &Signature::from_bytes(&signature))
        .map_err(|_| TrustError::BadSignature {
            sig: sig.to_owned(),
        })?;
    Ok(key)
}

/// What a host requires of the components it loads.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Keys whose signatures are trusted.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Refuse components without a valid signature by a trusted key.
    pub require_signatures: bool,
}

/// Check a component's bytes (by digest) against a pin and the policy. A
/// signature that is present is always checked; one by an untrusted key,
/// or none, is refused only when signatures are required.
pub fn check(
    component: &Path,
    sha256: &[u8; 32],
    pin: Option<&str>,
    policy: &TrustPolicy,
) -> Result<(), TrustError> {
    let actual = hex::encode(sha256);
    if let Some(expected) = pin {
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(TrustError::PinMismatch {
                expected: expected.to_owned(),
                actual,
            });
        }
    }
    let sig = signature_path(component);
    let line = match read_small(&sig) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if policy.require_signatures {
                Err(TrustError::Unsigned { sig })
            } else {
                Ok(())
            };
        }
        Err(e) => {
            return Err(TrustError::Malformed {
                sig,
                why: e.to_string(),
            })
        }
    };
    let signer = verify_line(&line, sha256, &sig)?;
    if !policy.trusted_keys.contains(&signer) {
        if policy.require_signatures {
            return Err(TrustError::Untrusted {
                key: show_public_key(&signer),
            });
        }
        tracing::warn!(component = %component.display(), "signed by {}, which is not a trusted key", show_public_key(&signer));
    }
    Ok(())
}

/// A small regular file as text.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_SIGNATURE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_every_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let component = dir.path().join("p.wasm");
        let digest = [7u8; 32];
        let key = generate_key().unwrap();
        let trusted = TrustPolicy {
            trusted_keys: vec![key.verifying_key()],
            require_signatures: true,
        };
        let sig = signature_path(&component);
        assert_eq!(
            check(&component, &digest, None, &trusted),
            Err(TrustError::Unsigned { sig: sig.clone() })
        );
        assert_eq!(
            check(&component, &digest, None, &TrustPolicy::default()),
            Ok(())
        );
        std::fs::write(&sig, sign(&key, &digest)).unwrap();
        assert_eq!(check(&component, &digest, None, &trusted), Ok(()));
        // The component changed after signing.
        assert_eq!(
            check(&component, &[8u8; 32], None, &trusted),
            Err(TrustError::BadSignature { sig: sig.clone() })
        );
        // Signed, but by a key nobody trusts.
        let other = TrustPolicy {
            trusted_keys: vec![generate_key().unwrap().verifying_key()],
            require_signatures: true,
        };
        assert_eq!(
            check(&component, &digest, None, &other),
            Err(TrustError::Untrusted {
                key: show_public_key(&key.verifying_key())
            })
        );
        // A pin that differs.
        let err = check(&component, &digest, Some("00"), &trusted).unwrap_err();
        assert!(matches!(err, TrustError::PinMismatch { .. }), "{err}");
        std::fs::write(&sig, "rsa abc").unwrap();
        assert!(matches!(
            check(&component, &digest, None, &trusted),
            Err(TrustError::Malformed { .. })
        ));
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_named() {
        let key = generate_key().unwrap().verifying_key();
        assert_eq!(parse_public_key(&show_public_key(&key)), Ok(key));
        assert_eq!(
            parse_public_key("ed25519:zz"),
            Err(
                "'ed25519:zz' is not a public key (expected 64 hex digits after \"ed25519:\")"
                    .into()
            )
        );
    }
}
