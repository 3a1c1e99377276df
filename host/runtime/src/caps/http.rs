//! Outbound HTTP through `wasi:http/outgoing-handler`, only to the origins on
//! the plugin's `outbound_hosts`.

use std::future::Future;

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
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}
