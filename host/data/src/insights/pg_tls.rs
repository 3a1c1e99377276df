//! TLS for a PostgreSQL source, as libpq's `sslmode` asks:
//! - `disable`: none;
//! - `prefer` (the default: TLS when the server offers it) and `require`:
//!   encrypted, the certificate checked only when the source names an
//!   `ssl_root_cert` (then as `verify-ca`), as libpq does with a root file;
//! - `verify-ca`: the certificate must chain to a trusted authority;
//! - `verify-full`: and name the host connected to.
//!
//! Trusted authorities are those of `ssl_root_cert` when given, else the
//! system's and Mozilla's (`webpki-roots`). The driver knows only the first
//! three modes: the last two are read here and given to it as `require`.
//! A server asking for a client certificate gets `ssl_cert` and `ssl_key`.
//! The files are read within [`MAX_PEM_BYTES`] and named in errors; a key
//! file's content never is.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::source::{read_small_file, SmallFileError};

/// Largest certificate or key file read (`ssl_root_cert`, `ssl_cert`,
/// `ssl_key`), in bytes.
pub const MAX_PEM_BYTES: u64 = 4 << 20;
/// Most certificates taken from one file.
pub const MAX_PEM_CERTS: usize = 1024;

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (the connection is encrypted, not authenticated).
    Nothing,
    /// That it chains to a trusted authority.
    Chain,
    /// That it chains to a trusted authority and names the host.
    Full,
}

/// `conn` with an `sslmode` of `verify-ca` or `verify-full` given as
/// `require`, and the check the last `sslmode` asks for, if it is one of
/// those two. Both forms are read as the driver reads them: `key=value`
/// pairs (values may be quoted, with `\` escapes) and URLs (`?a=b&c=d`).
pub fn split_sslmode(conn: &str) -> (String, Option<Check>) {
    let spans = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        url_values(conn)
    } else {
        pair_values(conn)
    };
    let mut out = String::with_capacity(conn.len());
    let mut check = None;
    let mut done = 0;
    for (key, start, end) in spans {
        if key != "sslmode" {
            continue;
        }
        check = match conn.get(start..end) {
            Some("verify-ca") => Some(Check::Chain),
            Some("verify-full") => Some(Check::Full),
            _ => None,
        };
        if check.is_some() {
            out.push_str(&conn[done..start]);
            out.push_str("require");
            done = end;
        }
    }
    out.push_str(&conn[done..]);
    (out, check)
}

/// Each `key=value` pair's key and its value's byte span (inside quotes).
fn pair_values(conn: &str) -> Vec<(&str, usize, usize)> {
    let bytes = conn.as_bytes();
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_space(i);
        if i >= bytes.len() {
            return out;
        }
        let key_start = i;
        while bytes
            .get(i)
            .is_some_and(|b| *b != b'=' && !b.is_ascii_whitespace())
        {
            i += 1;
        }
        let key = &conn[key_start..i];
        i = skip_space(i);
        if bytes.get(i) != Some(&b'=') {
            // Not a pair: the driver says what is wrong.
            return out;
        }
        i = skip_space(i + 1);
        let quoted = bytes.get(i) == Some(&b'\'');
        i += usize::from(quoted);
        let start = i;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' => i += 2,
                b'\'' if quoted => break,
                b if !quoted && b.is_ascii_whitespace() => break,
                _ => i += 1,
            }
        }
        let end = i.min(bytes.len());
        out.push((key, start, end));
        i = end + usize::from(quoted);
    }
}

/// Each URL query parameter's key and its value's byte span.
fn url_values(conn: &str) -> Vec<(&str, usize, usize)> {
    let Some(q) = conn.find('?') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = q + 1;
    for param in conn[at..].split('&') {
        if let Some(eq) = param.find('=') {
            out.push((&param[..eq], at + eq + 1, at + param.len()));
        }
        at += param.len() + 1;
    }
    out
}

/// The connector for `check`, trusting `root_cert`'s authorities when given
/// (else the system's and Mozilla's), logging in with `client` (a
/// certificate file and its key's) when given. An error names the file.
pub fn connector(
    check: Check,
    root_cert: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(NoCheck(provider)),
        Check::Chain | Check::Full => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            match check {
                Check::Full => webpki,
                _ => Arc::new(ChainOnly(webpki)),
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "ssl_cert")?;
            let key_bytes = read_bounded(key, "ssl_key")?;
            // The parser's own words may quote the file: not repeated.
            let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
                let why = match e {
                    rustls::pki_types::pem::Error::NoItemsFound => {
                        "holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----)"
                    }
                    _ => "is not a readable PEM private key",
                };
                format!("ssl_key {} {why}", key.display())
            })?;
            builder.with_client_auth_cert(chain, private).map_err(|e| {
                format!(
                    "ssl_cert {} with ssl_key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The file at `path` (the `setting` naming it), at most [`MAX_PEM_BYTES`].
fn read_bounded(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    let shown = path.display();
    read_small_file(path, MAX_PEM_BYTES).map_err(|e| match e {
        SmallFileError::Io(e) => format!("cannot read {setting} {shown}: {e}"),
        SmallFileError::NotRegular => format!("{setting} {shown} is not a regular file"),
        SmallFileError::TooLarge => format!(
            "{setting} {shown} is larger than {} MiB",
            MAX_PEM_BYTES >> 20
        ),
    })
}

/// The certificates of the PEM file at `path`, at least one and at most
/// [`MAX_PEM_CERTS`].
fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = read_bounded(path, setting)?;
    let mut out = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        if i == MAX_PEM_CERTS {
            return Err(format!(
                "{setting} {shown} holds more than {MAX_PEM_CERTS} certificates"
            ));
        }
        out.push(cert.map_err(|e| format!("{setting} {shown}: certificate {}: {e}", i + 1))?);
    }
    if out.is_empty() {
        return Err(format!(
            "{setting} {shown} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(out)
}

/// The authorities of `file`, or the system's and Mozilla's.
fn roots(file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let Some(path) = file else {
        // Unreadable system certificates are skipped: Mozilla's remain.
        let native = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(native.certs);
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    };
    for (i, cert) in certificates(path, "ssl_root_cert")?.into_iter().enumerate() {
        store.add(cert).map_err(|e| {
            format!(
                "ssl_root_cert {}: certificate {}: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(store)
}

/// Accepts any certificate; the handshake's signatures are still checked.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A chain to a trusted authority, whatever host the certificate names.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name: a name error means it held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_are_given_to_the_driver_as_require() {
        let cases = [
            (
                "host=db sslmode=verify-full",
                "host=db sslmode=require",
                Some(Check::Full),
            ),
            (
                "host=db sslmode = 'verify-ca' user=u",
                "host=db sslmode = 'require' user=u",
                Some(Check::Chain),
            ),
            (
                "postgresql://u@db/x?sslmode=verify-full&application_name=a",
                "postgresql://u@db/x?sslmode=require&application_name=a",
                Some(Check::Full),
            ),
            (
                "postgresql://u@db/x?a=1&sslmode=verify-ca",
                "postgresql://u@db/x?a=1&sslmode=require",
                Some(Check::Chain),
            ),
            ("host=db sslmode=require", "host=db sslmode=require", None),
            (
                "sslmode=verify-full host=db sslmode=disable",
                "sslmode=require host=db sslmode=disable",
                None,
            ),
            (
                "host=db password=xsslmode=verify-full",
                "host=db password=xsslmode=verify-full",
                None,
            ),
            (
                "password='a sslmode=verify-full' host=db",
                "password='a sslmode=verify-full' host=db",
                None,
            ),
            (
                r"password='it\'s' sslmode=verify-ca",
                r"password='it\'s' sslmode=require",
                Some(Check::Chain),
            ),
            (
                "postgresql://u:p%26sslmode%3Dverify-full@db/x",
                "postgresql://u:p%26sslmode%3Dverify-full@db/x",
                None,
            ),
            ("host=db sslmode", "host=db sslmode", None),
            (
                r"password=\é sslmode=verify-ca user=é",
                r"password=\é sslmode=require user=é",
                Some(Check::Chain),
            ),
            ("host=db", "host=db", None),
        ];
        for (given, driver, check) in cases {
            assert_eq!(split_sslmode(given), (driver.to_owned(), check), "{given}");
        }
    }

    #[test]
    fn a_root_file_is_read_within_bounds_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = roots(Some(&empty)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "ssl_root_cert {} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
                empty.display()
            )
        );
        let missing = dir.path().join("missing.pem");
        assert!(roots(Some(&missing)).unwrap_err().starts_with(&format!(
            "cannot read ssl_root_cert {}: ",
            missing.display()
        )));
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'x'; MAX_PEM_BYTES as usize + 1]).unwrap();
        assert_eq!(
            roots(Some(&big)).unwrap_err(),
            format!("ssl_root_cert {} is larger than 4 MiB", big.display())
        );
        assert_eq!(
            roots(Some(dir.path())).unwrap_err(),
            format!(
                "ssl_root_cert {} is not a regular file",
                dir.path().display()
            )
        );
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(roots(Some(&bad))
            .unwrap_err()
            .starts_with(&format!("ssl_root_cert {}: certificate 1: ", bad.display())));
        assert!(!roots(None).unwrap().is_empty());
        let secret = dir.path().join("secret.key");
        std::fs::write(
            &secret,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA!!\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(
            &cert,
            rcgen::generate_simple_self_signed(vec!["x".into()])
                .unwrap()
                .cert
                .pem(),
        )
        .unwrap();
        let err = connector(Check::Nothing, None, Some((&cert, &secret)))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "ssl_key {} is not a readable PEM private key",
                secret.display()
            )
        );
        let err = connector(Check::Nothing, None, Some((&cert, &empty)))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "ssl_key {} holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----)",
                empty.display()
            )
        );
    }
}
