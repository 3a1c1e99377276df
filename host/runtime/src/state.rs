//! The per-instance store data: WASI, limits and one state per capability.

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::caps::email::EmailInstance;
use crate::caps::entities::EntitiesInstance;
use crate::caps::http::HttpHooks;
use crate::caps::log::LogInstance;
use crate::caps::plugin_config::ConfigInstance;
use crate::caps::status::StatusInstance;
use crate::caps::teams::TeamsInstance;
use crate::stdio::Stdio;

/// Most host resources (wasi streams, http fields and requests, …) one
/// instance may hold at once. Host memory they use is outside the guest's
/// memory cap, so it is bounded here.
pub const MAX_RESOURCES: usize = 1_024;
/// Largest set of http header fields one `fields` resource may hold, bytes.
pub const MAX_HTTP_FIELDS_BYTES: usize = 32 * 1024;

/// A resource table for one instance, capped at [`MAX_RESOURCES`].
pub fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// A `wasi:http` context with the field-size cap.
pub fn http_ctx() -> WasiHttpCtx {
    let mut ctx = WasiHttpCtx::new();
    ctx.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
    ctx
}

/// Most table elements an instance may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most core instances, tables and memories per store.
pub const MAX_INSTANCES: usize = 64;

/// Data of one `Store`: lives for exactly one event delivery.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: HttpHooks,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) teams: TeamsInstance,
    pub(crate) email: EmailInstance,
    pub(crate) entities: EntitiesInstance,
    pub(crate) log: LogInstance,
    pub(crate) config: ConfigInstance,
    pub(crate) status: StatusInstance,
}

/// A WASI context with nothing in it: no preopened directory, no environment,
/// no arguments, no sockets, no name lookup; stdio captured.
pub fn sandboxed_wasi(stdio: &Stdio) -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.stdout(stdio.stdout.clone())
        .stderr(stdio.stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Caps linear memory and tables; remembers a breach so the failure can be
/// reported as the memory limit rather than whatever trap followed.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    /// The size the guest asked for when it hit the cap.
    pub breached: Option<usize>,
}

impl MemoryLimiter {
    /// A limiter for `max_bytes` of linear memory.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            breached: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.breached = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_INSTANCES
    }
    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}
