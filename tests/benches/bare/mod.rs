//! Bare wasmtime, the benchmarks' ceiling: the same engine and component as
//! the host, with only WASI p2 and the `config` import linked (every other
//! import traps) and none of the host's per-instance state.

use std::path::Path;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use triggerfish_runtime::bindings::triggerfish::plugin::config as wit_config;
use triggerfish_runtime::bindings::{Event, PluginPre};

/// The store's state.
pub struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
    config: NoopConfig,
}

struct NoopConfig;

impl wit_config::Host for NoopConfig {
    async fn get(&mut self, key: String) -> Option<String> {
        (key == "mode").then(|| "noop".to_owned())
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The component linked bare on `engine`.
pub fn pre(engine: &Engine, component: &Path) -> PluginPre<Bare> {
    let mut linker: Linker<Bare> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    wit_config::add_to_linker::<_, HasSelf<NoopConfig>>(&mut linker, |s| &mut s.config)
        .expect("config");
    let compiled = Component::from_file(engine, component).expect("compile");
    linker
        .define_unknown_imports_as_traps(&compiled)
        .expect("traps");
    PluginPre::new(linker.instantiate_pre(&compiled).expect("pre")).expect("world")
}

/// One event in a fresh instance: store, instantiate, call; `ok` asserted.
pub async fn deliver(engine: &Engine, pre: &PluginPre<Bare>, event: &Event) {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            config: NoopConfig,
        },
    );
    store.set_epoch_deadline(1_000);
    let inst = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    inst.triggerfish_plugin_handler()
        .call_on_event(&mut store, event)
        .await
        .expect("call")
        .expect("ok");
}
