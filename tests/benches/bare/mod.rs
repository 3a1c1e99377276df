//! Bare wasmtime, the benchmarks' ceiling: the same engine and component as
//! the host, with only WASI p2 and the `config` import linked (every other
//! import traps) and none of the host's per-instance state.

use std::path::Path;

use wasmtime::component::types::ComponentItem;
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
    // Every other Triggerfish import traps when called. (Not
    // `define_unknown_imports_as_traps`: it would also stub a newer WASI
    // name, such as `wasi:io/poll@0.2.12`, that the linker serves by semver,
    // and split its resource types.)
    let ty = compiled.component_type();
    for (name, item) in ty.imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !name.starts_with("triggerfish:plugin/")
            || name.starts_with("triggerfish:plugin/config@")
        {
            continue;
        }
        let mut inst = linker.instance(name).expect("instance");
        for (func, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let what = format!("{name}#{func}");
                inst.func_new_async(func, move |_, _, _, _| {
                    let what = what.clone();
                    Box::new(async move {
                        Err(wasmtime::Error::msg(format!("bare: {what} is not linked")))
                    })
                })
                .expect("trap stub");
            }
        }
    }
    PluginPre::new(linker.instantiate_pre(&compiled).expect("pre")).expect("world")
}

fn store(engine: &Engine) -> Store<Bare> {
    Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            config: NoopConfig,
        },
    )
}

/// One event in a fresh instance: store, instantiate, call; `ok` asserted.
pub async fn deliver(engine: &Engine, pre: &PluginPre<Bare>, event: &Event) {
    let mut store = store(engine);
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

/// `n` events in one instance, reused: what per-event instantiation costs
/// is the difference from [`deliver`].
#[allow(dead_code)]
pub async fn deliver_reused(engine: &Engine, pre: &PluginPre<Bare>, event: &Event, n: u32) {
    let mut store = store(engine);
    store.set_epoch_deadline(u64::MAX / 2);
    let inst = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    for _ in 0..n {
        inst.triggerfish_plugin_handler()
            .call_on_event(&mut store, event)
            .await
            .expect("call")
            .expect("ok");
    }
}
