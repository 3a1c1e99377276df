//! World compatibility, with components built from source by the C
//! toolchain (fast): any `triggerfish:plugin@0.1.x` loads; an import the host
//! does not provide, or a missing `handler`, is refused at load with the
//! interface named.

use crate::support;

use std::path::{Path, PathBuf};

use support::{arg, build_plugin, copy_plugin, lit, root, tempdir, triggerfish, Run};

fn host_wit() -> String {
    std::fs::read_to_string(root().join("wit/plugin.wit")).unwrap()
}

/// A C plugin folder with its own WIT and source.
fn c_plugin(work: &Path, name: &str, wit: &str, source: &str) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("name = \"{name}\"\nversion = \"0.1.0\"\nlanguage = \"c\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("wit/plugin.wit"), wit).unwrap();
    std::fs::write(dir.join("plugin.c"), source).unwrap();
    dir
}

fn fire(work: &Path, component: &Path) -> Run {
    let config = work.join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\nstate_dir = {}\n[teams.channels.ops]\nmode = \"outbox\"\n\n[[plugins]]\nname = \"p\"\ncomponent = {}\ntriggers = [\"data-source-refresh-failed\"]\n[plugins.grants]\nteams = [\"ops\"]\n",
            lit(&work.join("state")),
            lit(component)
        ),
    )
    .unwrap();
    triggerfish(
        &[
            "fire",
            "--config",
            arg(&config),
            "--plugin",
            "p",
            "--event",
            "data-source-refresh-failed",
        ],
        &[],
    )
}

#[test]
fn a_component_built_against_a_later_0_1_world_loads() {
    let work = tempdir();
    let dir = copy_plugin(
        &root().join("plugins/c/teams-on-refresh-failure"),
        work.path(),
    );
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    std::fs::write(
        dir.join("wit/plugin.wit"),
        host_wit().replace(
            "package triggerfish:plugin@0.1.1;",
            "package triggerfish:plugin@0.1.7;",
        ),
    )
    .unwrap();
    let component = build_plugin(&dir, &[]);
    let inspect = triggerfish(&["plugin", "inspect", arg(&component)], &[]);
    assert_eq!(inspect.code, 0, "{}\n{}", inspect.stdout, inspect.stderr);
    assert!(
        inspect.stdout.contains("triggerfish:plugin/teams@0.1.7"),
        "{}",
        inspect.stdout
    );
    assert!(
        inspect
            .stdout
            .contains("exports    triggerfish:plugin/handler@0.1.7"),
        "{}",
        inspect.stdout
    );
    let run = fire(work.path(), &component);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("teams -> "), "{}", run.stdout);
}

/// Components built before 0.1.1 added partitions, writes and status
/// reports keep loading: their `entities@0.1.0` (three functions) is served
/// by the host's `entities@0.1.1`.
#[test]
fn components_built_against_the_0_1_0_world_keep_loading() {
    let work = tempdir();
    let old_wit =
        std::fs::read_to_string(root().join("tests/fixtures/wit-0.1.0/plugin.wit")).unwrap();
    assert!(old_wit.contains("package triggerfish:plugin@0.1.0;"));
    assert!(!old_wit.contains("create-item"));

    let dir = copy_plugin(
        &root().join("plugins/c/teams-on-refresh-failure"),
        work.path(),
    );
    std::fs::create_dir_all(dir.join("wit")).unwrap();
    std::fs::write(dir.join("wit/plugin.wit"), &old_wit).unwrap();
    let component = build_plugin(&dir, &[]);
    let inspect = triggerfish(&["plugin", "inspect", arg(&component)], &[]);
    assert_eq!(inspect.code, 0, "{}\n{}", inspect.stdout, inspect.stderr);
    assert!(
        inspect
            .stdout
            .contains("exports    triggerfish:plugin/handler@0.1.0")
            && inspect
                .stdout
                .contains("world      fits triggerfish:plugin@0.1.1"),
        "{}",
        inspect.stdout
    );
    let run = fire(work.path(), &component);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("teams -> "), "{}", run.stdout);

    // A 0.1.0 component that calls `entities`: the call reaches the host
    // (which denies it: nothing is granted) and the answer reaches the guest.
    let source = r#"#include "plugin.h"
bool exports_triggerfish_plugin_handler_on_event(exports_triggerfish_plugin_handler_event_t *event, plugin_string_t *err) {
    plugin_list_string_t names;
    triggerfish_plugin_entities_error_t e;
    bool ok = triggerfish_plugin_entities_list_entities(&names, &e);
    exports_triggerfish_plugin_handler_event_free(event);
    if (ok) {
        plugin_list_string_free(&names);
        plugin_string_dup(err, "listed");
    } else if (e.tag == TRIGGERFISH_PLUGIN_TYPES_ERROR_DENIED) {
        plugin_string_dup(err, "entities said denied");
    } else {
        plugin_string_dup(err, "entities said something else");
    }
    return false;
}
"#;
    let dir = c_plugin(work.path(), "reader-0-1-0", &old_wit, source);
    let component = build_plugin(&dir, &[]);
    let inspect = triggerfish(&["plugin", "inspect", arg(&component)], &[]);
    assert!(
        inspect.stdout.contains("triggerfish:plugin/entities@0.1.0"),
        "{}",
        inspect.stdout
    );
    let run = fire(work.path(), &component);
    assert!(
        run.stdout.contains("entities said denied"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn an_import_the_host_does_not_provide_is_refused_naming_it() {
    let work = tempdir();
    let wit = host_wit().replace(
        "world plugin {",
        "interface sms {\n    send: func(to: string) -> result<_, string>;\n}\n\nworld plugin {\n    import sms;",
    );
    let source = r#"#include "plugin.h"
bool exports_triggerfish_plugin_handler_on_event(exports_triggerfish_plugin_handler_event_t *event, plugin_string_t *err) {
    plugin_string_t to;
    plugin_string_dup(&to, "+33600000000");
    bool ok = triggerfish_plugin_sms_send(&to, err);
    plugin_string_free(&to);
    exports_triggerfish_plugin_handler_event_free(event);
    return ok;
}
"#;
    let dir = c_plugin(work.path(), "sms", &wit, source);
    let component = build_plugin(&dir, &[]);
    let inspect = triggerfish(&["plugin", "inspect", arg(&component)], &[]);
    assert_ne!(inspect.code, 0);
    assert!(
        inspect.stdout.contains("does NOT fit")
            && inspect.stdout.contains("`triggerfish:plugin/sms@0.1.1`"),
        "{}",
        inspect.stdout
    );
    let run = fire(work.path(), &component);
    assert_ne!(run.code, 0);
    let want = "error: plugin 'p': ";
    assert!(run.stderr.starts_with(want), "{}", run.stderr);
    assert!(
        run.stderr.contains("`triggerfish:plugin/sms@0.1.1`"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("does not fit").count(),
        1,
        "said once: {}",
        run.stderr
    );
    // Nor is it packed.
    let pack = triggerfish(&["plugin", "pack", arg(&dir)], &[]);
    assert_ne!(pack.code, 0);
    assert!(pack.stderr.contains("it is not packed"), "{}", pack.stderr);
}

#[test]
fn a_component_without_the_handler_is_refused_naming_it() {
    let work = tempdir();
    let wit = host_wit().replace("    export handler;\n", "    export tick: func();\n");
    let source = r#"#include "plugin.h"
void exports_plugin_tick(void) {
    plugin_string_t msg;
    plugin_string_dup(&msg, "tick");
    triggerfish_plugin_log_log(TRIGGERFISH_PLUGIN_LOG_LEVEL_INFO, &msg);
    plugin_string_free(&msg);
}
"#;
    let dir = c_plugin(work.path(), "no-handler", &wit, source);
    let component = build_plugin(&dir, &[]);
    let run = fire(work.path(), &component);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.starts_with("error: plugin 'p': "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("triggerfish:plugin/handler@0.1.1"),
        "{}",
        run.stderr
    );
}
