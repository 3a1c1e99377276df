//! Outbound HTTP through `wasi:http/outgoing-handler`, only to the origins on
//! the plugin's `outbound_hosts`, and never to an internal address unless
//! that address itself is granted. The name is resolved once.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use http_body_util::BodyExt;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

use crate::context::{CallContext, Level, LogSource};
use crate::grants::Origin;

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
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        _ = fut;
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_owned();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let Some(origin) = self.origins.iter().find(|o| o.allows(&scheme, &host, port)) else {
            self.deny(&format!(
                "outbound request to {scheme}://{host}:{port} denied: not in outbound_hosts"
            ));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        };
        // An address granted as such (`127.0.0.1:8080`) may be internal.
        let granted_ip = origin.ip();
        let cx = self.cx.clone();
        Box::new(async move {
            let addr = match checked_address(&cx, &host, port, granted_ip).await {
                Ok(addr) => addr,
                Err(why) => {
                    cx.log(
                        Level::Warn,
                        LogSource::Log,
                        &format!("outbound request to {scheme}://{host}:{port} denied: {why}"),
                    );
                    return Err(wasmtime_wasi_http::Error::DestinationIpProhibited);
                }
            };
            // Plain HTTP connects to the address checked above, never to a
            // second lookup (the Host header keeps the name). HTTPS connects
            // by name: its certificate must match the name, so a rebinding
            // to an internal address fails the handshake.
            if scheme == "http" {
                if let Err(e) = pin_authority(&mut request, addr) {
                    cx.log(
                        Level::Warn,
                        LogSource::Log,
                        &format!("outbound request: {e}"),
                    );
                    return Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid);
                }
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl HttpHooks {
    fn deny(&self, message: &str) {
        self.cx.log(Level::Warn, LogSource::Log, message);
    }
}

/// Resolve `host` once, within the delivery's deadline, and return an address
/// that may be reached: none of the resolved addresses may be internal
/// (see [`is_internal`]) unless it is the granted address itself.
async fn checked_address(
    cx: &CallContext,
    host: &str,
    port: u16,
    granted_ip: Option<IpAddr>,
) -> Result<SocketAddr, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(cx.remaining(), lookup).await {
        Err(_) => return Err("name lookup did not finish before the deadline".into()),
        Ok(Err(e)) => return Err(format!("cannot resolve '{host}': {e}")),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    if let Some(bad) = addrs
        .iter()
        .find(|a| is_internal(a.ip()) && Some(a.ip()) != granted_ip)
    {
        return Err(format!(
            "'{host}' resolves to {}, an internal address (loopback, private, link-local or metadata); grant that address itself to allow it",
            bad.ip()
        ));
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("'{host}' has no address"))
}

/// Point a plain-HTTP request at `addr`, keeping its `Host` header.
fn pin_authority(request: &mut http::Request<WasiBody>, addr: SocketAddr) -> Result<(), String> {
    let mut parts = request.uri().clone().into_parts();
    parts.authority = Some(
        addr.to_string()
            .parse()
            .map_err(|e| format!("cannot address {addr}: {e}"))?,
    );
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|e| e.to_string())?;
    Ok(())
}

/// Addresses a plugin may reach only when granted by address: loopback,
/// private (RFC 1918, ULA), link-local (where cloud metadata services live,
/// 169.254.169.254 and fd00:ec2::254), carrier-grade NAT, unspecified,
/// broadcast, multicast and reserved ranges; IPv4 inside IPv6
/// (`::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`) is judged as IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return is_internal(IpAddr::V4(std::net::Ipv4Addr::new(
                    o[12], o[13], o[14], o[15],
                )));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Add `wasi:http` to the linker (WASI itself is added by the engine).
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:2800:220:1::1",
            "100.128.0.1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
