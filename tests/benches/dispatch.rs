//! Per-event cost: a fresh instance plus `on-event` for a no-op plugin,
//! through the host (`Host::deliver`) and through bare wasmtime
//! (`PluginPre::instantiate_async` + call, same engine, same component).
//! The ratio host/bare is the figure that matters; see BENCHMARKS.md.

#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use triggerfish::config_file::Config;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_runtime::bindings::triggerfish::plugin::config as wit_config;
use triggerfish_runtime::bindings::PluginPre;
use triggerfish_runtime::{Host, Select};

struct Bare {
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

fn bench(c: &mut Criterion) {
    let component = support::guest("noop");
    let dir = support::tempdir();
    let path = dir.path().join("triggerfish.toml");
    std::fs::write(
        &path,
        format!(
            "[[plugins]]\nname = \"noop\"\ncomponent = {}\n[plugins.config]\nmode = \"noop\"\n",
            support::lit(&component)
        ),
    )
    .expect("write config");
    let config = Config::load(&path).expect("config");
    let host = Arc::new(Host::new(&config.settings, Select::All).expect("host"));
    let event = build_event(TriggerKind::FullRefreshCompleted, None).expect("event");
    let wit_event = triggerfish_runtime::bindings::Event::from(&event);

    // Bare wasmtime on the host's own engine: WASI p2 + `config`, the rest traps.
    let engine = host.runtime().engine().clone();
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    wit_config::add_to_linker::<_, HasSelf<NoopConfig>>(&mut linker, |s| &mut s.config)
        .expect("config");
    let compiled = wasmtime::component::Component::from_file(&engine, &component).expect("compile");
    linker
        .define_unknown_imports_as_traps(&compiled)
        .expect("traps");
    let pre = PluginPre::new(linker.instantiate_pre(&compiled).expect("pre")).expect("world");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut group = c.benchmark_group("per_event_noop");
    group.bench_function("bare_wasmtime", |b| {
        b.to_async(&rt).iter(|| async {
            let mut store = Store::new(
                &engine,
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
                .call_on_event(&mut store, &wit_event)
                .await
                .expect("call")
                .expect("ok");
        })
    });
    group.bench_function("triggerfish_host", |b| {
        b.to_async(&rt).iter(|| async {
            let o = host.deliver("noop", &event).await.expect("deliver");
            assert!(o.result.is_ok(), "{:?}", o.result);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
