//! Per-event cost: a fresh instance plus `on-event` for a no-op plugin,
//! through the host (`Host::deliver`) and through bare wasmtime
//! (`PluginPre::instantiate_async` + call, same engine, same component).
//! The ratio host/bare is the figure that matters; see BENCHMARKS.md.

mod bare;
#[path = "../support/mod.rs"]
mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use triggerfish::config_file::Config;
use triggerfish_data::event::{build_event, TriggerKind};
use triggerfish_runtime::{Host, Select};

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

    // Bare wasmtime on the host's own engine.
    let engine = host.runtime().engine().clone();
    let pre = bare::pre(&engine, &component);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut group = c.benchmark_group("per_event_noop");
    group.bench_function("bare_wasmtime", |b| {
        b.to_async(&rt)
            .iter(|| bare::deliver(&engine, &pre, &wit_event))
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
