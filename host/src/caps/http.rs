//! Outbound HTTP through `wasi:http/outgoing-handler`, only to the origins on
//! the plugin's `outbound_hosts`.

use std::future::Future;

use http_body_util::BodyExt;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::context::{CallContext, Level, LogSource};
use crate::state::InstanceState;

/// An allowed origin: scheme (or any), host, port (or the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parse `https://host[:port]`, `http://host[:port]` or `host[:port]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = || {
            format!("'{text}' is not an origin (expected e.g. \"https://api.example.com\" or \"127.0.0.1:8080\")")
        };
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (Some(s.to_owned()), r),
            Some(_) => return Err(expected()),
            None => (None, text),
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(expected());
        }
        let parse_port = |p: &str| p.parse::<u16>().map_err(|_| expected());
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(expected)?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or_else(expected)?)?),
            };
            (h, port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(parse_port(p)?)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(expected());
        }
        Ok(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Does a request to `scheme://host:port` match?
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let default_port = if scheme == "https" { 443 } else { 80 };
        let want_port = self.port.unwrap_or(match self.scheme.as_deref() {
            Some("https") => 443,
            Some(_) => 80,
            None => default_port,
        });
        scheme_ok
            && self.host
                == host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            && want_port == port
    }
}

/// Per-instance hooks: the allow-list check in front of the default sender.
pub struct HttpHooks {
    origins: Vec<Origin>,
    cx: CallContext,
}

impl HttpHooks {
    /// Hooks for one delivery.
    pub fn new(origins: Vec<Origin>, cx: CallContext) -> Self {
        Self { origins, cx }
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        _ = fut;
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri.host().unwrap_or("").to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !self.origins.iter().any(|o| o.allows(&scheme, &host, port)) {
            self.cx.log(
                Level::Warn,
                LogSource::Log,
                &format!(
                    "outbound request to {scheme}://{host}:{port} denied: not in outbound_hosts"
                ),
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Add `wasi:http` to the linker (WASI itself is added by the engine).
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match() {
        let o = Origin::parse("https://api.example.com").unwrap();
        assert!(o.allows("https", "API.example.com", 443));
        assert!(!o.allows("http", "api.example.com", 80));
        assert!(!o.allows("https", "api.example.com", 8443));
        assert!(Origin::parse("http://[::1]:9000")
            .unwrap()
            .allows("http", "[::1]", 9000));
        let o = Origin::parse("127.0.0.1:8080").unwrap();
        assert!(o.allows("http", "127.0.0.1", 8080));
        assert!(o.allows("https", "127.0.0.1", 8080));
        assert!(!o.allows("http", "127.0.0.1", 8081));
        assert!(Origin::parse("ftp://x").is_err());
        assert!(Origin::parse("https://x/path").is_err());
        assert!(Origin::parse("x:notaport").is_err());
        assert_eq!(
            Origin::parse("").unwrap_err(),
            "'' is not an origin (expected e.g. \"https://api.example.com\" or \"127.0.0.1:8080\")"
        );
    }
}
