//! The plugin author's loop in every language, as the README tells it:
//! `plugin new` -> `plugin build` -> `plugin test` (-> `--bless`) -> `fire`.

use crate::support;

use std::process::Command;
use std::time::Instant;

use support::{arg, lit, root, tempdir, triggerfish};

fn author_loop(lang: &str) {
    let work = tempdir();
    let name = format!("hello-{lang}");
    let started = Instant::now();
    let new = triggerfish(
        &[
            "plugin",
            "new",
            "--lang",
            lang,
            &name,
            "--dir",
            arg(work.path()),
        ],
        &[],
    );
    new.assert_ok("plugin new");
    let dir = work.path().join(&name);
    for file in [
        "plugin.toml",
        "README.md",
        ".gitignore",
        "wit/plugin.wit",
        "fixtures/refresh-failed.json",
    ] {
        assert!(dir.join(file).is_file(), "{lang}: scaffold lacks {file}");
    }
    if lang == "js" {
        let npm = Command::new("npm")
            .args([
                "install",
                "--prefer-offline",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .current_dir(&dir)
            .status()
            .expect("run npm");
        assert!(npm.success(), "npm install in the JS scaffold");
    }
    // Compiled code is cached under XDG_CACHE_HOME; a standalone Rust
    // plugin shares one target folder across runs.
    let xdg = root().join("target/tf-test-xdg");
    let target = root().join("target/scaffold");
    let mut env = vec![("XDG_CACHE_HOME", arg(&xdg))];
    if lang == "rust" {
        env.push(("CARGO_TARGET_DIR", arg(&target)));
    }
    let envs = env.as_slice();
    let build = triggerfish(&["plugin", "build", arg(&dir)], envs);
    build.assert_ok("plugin build");
    let component = dir.join("build").join(format!("{name}.wasm"));
    assert!(
        build
            .stdout
            .starts_with(&format!("built {} (", component.display())),
        "{}",
        build.stdout
    );
    assert!(build.stdout.contains(" bytes, "), "{}", build.stdout);
    let built = started.elapsed();

    // No recording yet: the test fails and says how to make one.
    let first = triggerfish(&["plugin", "test", arg(&dir)], envs);
    assert_ne!(first.code, 0, "{}", first.stdout);
    assert!(
        first.stdout.contains("plugin test --bless"),
        "{}",
        first.stdout
    );
    triggerfish(&["plugin", "test", "--bless", arg(&dir)], envs).assert_ok("plugin test --bless");
    let expected_path = dir.join("fixtures/refresh-failed.expected.json");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
    assert_eq!(expected["result"], "ok", "{expected}");
    assert_eq!(expected["teams"][0]["channel"], "ops", "{expected}");
    let card = expected["teams"][0]["body"]["attachments"][0]["content"].to_string();
    assert!(
        card.contains("data-source-refresh-failed") && card.contains("evt-fixture-1"),
        "{lang}: {card}"
    );
    let pass = triggerfish(&["plugin", "test", arg(&dir)], envs);
    pass.assert_ok("plugin test");
    assert!(
        pass.stdout.contains("ok       refresh-failed"),
        "{}",
        pass.stdout
    );

    // A recording the plugin no longer matches fails, naming the difference.
    let mut changed = expected.clone();
    changed["teams"][0]["channel"] = "sales".into();
    std::fs::write(
        &expected_path,
        serde_json::to_string_pretty(&changed).unwrap(),
    )
    .unwrap();
    let fail = triggerfish(&["plugin", "test", arg(&dir)], envs);
    assert_ne!(fail.code, 0);
    assert!(
        fail.stdout
            .contains(r#"$.teams[0].channel: expected "sales", got "ops""#),
        "{}",
        fail.stdout
    );
    let tested = started.elapsed();

    // And a host runs it.
    let config = work.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\nstate_dir = {}\ncache_dir = {}\n[teams.channels.ops]\nmode = \"outbox\"\n\n[[plugins]]\nname = \"{name}\"\ncomponent = {}\ntriggers = [\"data-source-refresh-failed\"]\n[plugins.grants]\nteams = [\"ops\"]\n",
            lit(&work.path().join("state")),
            lit(&xdg.join("triggerfish/compiled")),
            lit(&component),
        ),
    )
    .unwrap();
    let fire = triggerfish(
        &[
            "fire",
            "--config",
            arg(&config),
            "--plugin",
            &name,
            "--event",
            "data-source-refresh-failed",
        ],
        &[],
    );
    fire.assert_ok("fire");
    let outbox = work.path().join("state/outbox/teams/ops");
    assert_eq!(
        std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0),
        1,
        "{}",
        fire.stdout
    );
    eprintln!(
        "{lang}: scaffold+build {:.1} s, +test {:.1} s, +fire {:.1} s",
        built.as_secs_f64(),
        tested.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn rust_scaffold_builds_tests_and_fires() {
    author_loop("rust");
}

#[test]
fn python_scaffold_builds_tests_and_fires() {
    author_loop("python");
}

#[test]
fn javascript_scaffold_builds_tests_and_fires() {
    author_loop("js");
}

#[test]
fn c_scaffold_builds_tests_and_fires() {
    author_loop("c");
}
