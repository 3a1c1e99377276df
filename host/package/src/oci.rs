//! Plugins as OCI artefacts in the CNCF wasm layout: one `application/wasm`
//! layer, a `application/vnd.wasm.config.v0+json` config, and the signature
//! line in a manifest annotation. Pulled artefacts are cached by manifest
//! digest and every byte is checked against its digest before use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};

use crate::auth;

/// The scheme of a registry reference in `component = "oci://…"`.
pub const SCHEME: &str = "oci://";
/// The CNCF wasm config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF wasm layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The manifest annotation holding the signature line (`ed25519 <key> <sig>`).
pub const SIGNATURE_ANNOTATION: &str = "dev.triggerfish.signature";
/// Largest component pulled (the host's own load limit).
pub const MAX_LAYER_BYTES: u64 = 256 * 1024 * 1024;
/// Largest signature annotation accepted.
pub const MAX_SIGNATURE_CHARS: usize = 1024;
/// Registry requests time out after this long without progress.
pub const REGISTRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a push or pull failed. Every message names the reference.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("'{0}' is not a registry reference (expected oci://HOST[:PORT]/REPOSITORY:TAG or …@sha256:DIGEST): {1}")]
    BadReference(String, String),
    #[error("{reference}: {message}")]
    Registry { reference: String, message: String },
    #[error("{reference}: {message}")]
    Refused { reference: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A parsed `oci://` reference.
#[derive(Debug, Clone)]
pub struct OciRef {
    inner: Reference,
    text: String,
}

impl OciRef {
    /// Parse `oci://HOST[:PORT]/REPO:TAG` or `oci://HOST/REPO@sha256:HEX`.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let bad = |why: &str| OciError::BadReference(text.to_owned(), why.to_owned());
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with oci://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository"))?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                "the registry host must be explicit, e.g. registry.example.com or 127.0.0.1:5000",
            ));
        }
        if path.is_empty() {
            return Err(bad("it names no repository"));
        }
        let inner: Reference = rest
            .parse()
            .map_err(|e: oci_client::ParseError| bad(&e.to_string()))?;
        if let Some(d) = inner.digest() {
            if !is_sha256_digest(d) {
                return Err(bad("only sha256 digests are accepted"));
            }
        }
        Ok(Self {
            inner,
            text: text.to_owned(),
        })
    }

    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// The pinned manifest digest, `sha256:…`, when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }
}

impl std::fmt::Display for OciRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|r| r.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| registry.rsplit_once(':').map_or(registry, |(h, _)| h));
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client for one registry: plain HTTP on loopback (as docker does), HTTPS
/// everywhere else.
fn client(r: &OciRef) -> Client {
    let protocol = if is_loopback(r.registry()) {
        ClientProtocol::HttpsExcept(vec![r.registry().to_owned()])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        read_timeout: Some(REGISTRY_TIMEOUT),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    })
}

fn registry_error(r: &OciRef, what: &str, e: impl std::fmt::Display) -> OciError {
    OciError::Registry {
        reference: r.to_string(),
        message: format!("{what}: {e}"),
    }
}

fn refused(r: &OciRef, message: String) -> OciError {
    OciError::Refused {
        reference: r.to_string(),
        message,
    }
}

/// What to push: a component, its signature line and its descriptive
/// annotations.
pub struct Artefact<'a> {
    pub component: &'a [u8],
    pub signature: Option<&'a str>,
    pub annotations: BTreeMap<String, String>,
    /// The CNCF config's `component` object (world, imports, exports).
    pub component_info: serde_json::Value,
}

/// Push a component; returns the manifest digest (`sha256:…`).
pub async fn push(r: &OciRef, artefact: Artefact<'_>) -> Result<String, OciError> {
    let auth = auth::for_registry(r.registry()).map_err(|e| refused(r, e))?;
    let layer = ImageLayer::new(
        artefact.component.to_vec(),
        WASM_LAYER_MEDIA_TYPE.to_owned(),
        None,
    );
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer.sha256_digest()],
        "component": artefact.component_info,
    });
    let config = Config::new(
        serde_json::to_vec(&config).unwrap_or_default(),
        WASM_CONFIG_MEDIA_TYPE.to_owned(),
        None,
    );
    let mut annotations = artefact.annotations;
    if let Some(sig) = artefact.signature {
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), sig.trim().to_owned());
    }
    let manifest = OciImageManifest::build(
        std::slice::from_ref(&layer),
        &config,
        (!annotations.is_empty()).then_some(annotations),
    );
    let client = client(r);
    client
        .push(&r.inner, &[layer], config, &auth, Some(manifest))
        .await
        .map_err(|e| registry_error(r, "push failed", e))?;
    client
        .fetch_manifest_digest(&r.inner, &auth)
        .await
        .map_err(|e| registry_error(r, "pushed, but reading the digest back failed", e))
}

/// A pulled artefact, verified and in the cache.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The component file in the cache; its signature, if any, beside it as
    /// `component.wasm.sig`.
    pub component: PathBuf,
    /// The manifest digest.
    pub digest: String,
    /// The component's digest (the layer's).
    pub layer_digest: String,
    /// Whether the manifest carried a signature.
    pub signed: bool,
    /// Served from the cache with no registry request.
    pub from_cache: bool,
}

/// The cache folder of one manifest digest.
fn entry_dir(cache: &Path, digest: &str) -> PathBuf {
    cache.join("oci").join(digest.replace(':', "-"))
}

/// Pull `r` into `cache` (or take it from there when `r` is pinned by digest
/// and the cached copy still matches), checking every digest on the way.
pub async fn pull(r: &OciRef, cache: &Path) -> Result<Pulled, OciError> {
    if let Some(digest) = r.digest() {
        match from_cache(r, cache, digest) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; pulling it again"),
        }
    }
    let auth = auth::for_registry(r.registry()).map_err(|e| refused(r, e))?;
    let client = client(r);
    let (raw, _) = client
        .pull_manifest_raw(&r.inner, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .map_err(|e| registry_error(r, "cannot fetch the manifest", e))?;
    let digest = sha256_digest(&raw);
    if let Some(want) = r.digest() {
        if want != digest {
            return Err(refused(
                r,
                format!("the manifest's digest is {digest}, not the {want} the reference pins"),
            ));
        }
    }
    let manifest = check_manifest(r, &raw)?;
    let layer = &manifest.layers[0];
    let mut stream = client
        .pull_blob_stream(&r.inner, layer)
        .await
        .map_err(|e| registry_error(r, "cannot fetch the component layer", e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0).min(1 << 26));
    while let Some(chunk) = stream.stream.next().await {
        let chunk = chunk.map_err(|e| {
            let text = e.to_string();
            if text.contains("igest") {
                refused(
                    r,
                    format!(
                        "the component layer does not match its digest {}: {text}",
                        layer.digest
                    ),
                )
            } else {
                registry_error(r, "reading the component layer", e)
            }
        })?;
        if (bytes.len() + chunk.len()) as u64 > MAX_LAYER_BYTES
            || (bytes.len() + chunk.len()) as i64 > layer.size
        {
            return Err(refused(
                r,
                format!(
                    "the component layer is larger than its manifest says ({} bytes)",
                    layer.size
                ),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let got = sha256_digest(&bytes);
    if got != layer.digest {
        return Err(refused(
            r,
            format!("the component layer does not match its digest: the manifest says {}, the bytes are {got} (tampered with?)", layer.digest),
        ));
    }
    let dir = entry_dir(cache, &digest);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| OciError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    write_atomic(&dir.join("manifest.json"), &raw)?;
    let component = dir.join("component.wasm");
    write_atomic(&component, &bytes)?;
    let signed = write_signature(&dir, &manifest)?;
    Ok(Pulled {
        component,
        digest,
        layer_digest: got,
        signed,
        from_cache: false,
    })
}

/// The manifest, checked for the wasm layout and sane sizes.
fn check_manifest(r: &OciRef, raw: &[u8]) -> Result<OciImageManifest, OciError> {
    let manifest: OciImageManifest = serde_json::from_slice(raw)
        .map_err(|e| refused(r, format!("the manifest is not an OCI image manifest: {e}")))?;
    if manifest.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(refused(
            r,
            format!(
                "not a wasm artefact: config media type '{}', expected '{WASM_CONFIG_MEDIA_TYPE}'",
                manifest.config.media_type
            ),
        ));
    }
    match manifest.layers.as_slice() {
        [l] if l.media_type == WASM_LAYER_MEDIA_TYPE && is_sha256_digest(&l.digest) => {
            if l.size < 0 || l.size as u64 > MAX_LAYER_BYTES {
                return Err(refused(
                    r,
                    format!(
                        "the component layer's size {} is over the {MAX_LAYER_BYTES}-byte limit",
                        l.size
                    ),
                ));
            }
        }
        _ => {
            return Err(refused(
                r,
                format!(
                    "expected exactly one '{WASM_LAYER_MEDIA_TYPE}' layer with a sha256 digest"
                ),
            ))
        }
    }
    let sig = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION));
    if sig.is_some_and(|s| s.len() > MAX_SIGNATURE_CHARS || s.contains('\n')) {
        return Err(refused(r, "the signature annotation is malformed".into()));
    }
    Ok(manifest)
}

/// Writes (or removes) `component.wasm.sig` from the manifest's annotation.
fn write_signature(dir: &Path, manifest: &OciImageManifest) -> Result<bool, OciError> {
    let path = dir.join("component.wasm.sig");
    match manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIGNATURE_ANNOTATION))
    {
        Some(line) => {
            write_atomic(&path, format!("{line}\n").as_bytes())?;
            Ok(true)
        }
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(OciError::Io { path, source }),
        },
    }
}

/// A cached entry for a pinned digest, re-verified byte for byte.
fn from_cache(r: &OciRef, cache: &Path, digest: &str) -> Result<Option<Pulled>, OciError> {
    let dir = entry_dir(cache, digest);
    let raw = match std::fs::read(dir.join("manifest.json")) {
        Ok(raw) => raw,
        Err(_) => return Ok(None),
    };
    if sha256_digest(&raw) != digest {
        return Err(refused(
            r,
            format!(
                "the cached manifest in {} does not match its digest",
                dir.display()
            ),
        ));
    }
    let manifest = check_manifest(r, &raw)?;
    let component = dir.join("component.wasm");
    let bytes = match std::fs::read(&component) {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let got = sha256_digest(&bytes);
    if got != manifest.layers[0].digest {
        return Err(refused(
            r,
            format!(
                "the cached component {} does not match its digest",
                component.display()
            ),
        ));
    }
    let signed = write_signature(&dir, &manifest)?;
    Ok(Some(Pulled {
        component,
        digest: digest.to_owned(),
        layer_digest: got,
        signed,
        from_cache: true,
    }))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    use std::io::Write as _;
    let err = |source| OciError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_or_say_why() {
        let r = OciRef::parse("oci://127.0.0.1:5000/plugins/teams:0.1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert!(r.digest().is_none());
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = OciRef::parse(&format!("oci://registry.example.com/p/t@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        for (bad, why) in [
            ("127.0.0.1:5000/p:1", "must start with oci://"),
            ("oci://teams:1", "names no repository"),
            ("oci://plugins/teams:1", "registry host must be explicit"),
            (
                "oci://r.example.com/p@md5:abc",
                "oci://r.example.com/p@md5:abc",
            ),
        ] {
            let e = OciRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn loopback_registries_use_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
