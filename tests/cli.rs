//! The command line: `plugins` checks components against the world; errors
//! name the file, line and key, or the plugin.

use crate::support;

use support::{guest, lit, root, tempdir, triggerfish};

#[test]
fn plugins_lists_and_checks_each_component() {
    let dir = tempdir();
    let not_wasm = dir.path().join("not-a-component.wasm");
    std::fs::write(&not_wasm, b"\0asm\x01\0\0\0").unwrap();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[host]
cache_dir = {cache}
[teams.channels.ops]
mode = "outbox"

[[plugins]]
name = "good"
component = {good}
triggers = ["data-source-refresh-failed", "full-refresh-completed"]
[plugins.grants]
teams = ["ops"]

[[plugins]]
name = "bad"
component = {bad}

[[plugins]]
name = "missing"
component = "nowhere.wasm"
"#,
            cache = lit(&root().join("target/tf-test-cache")),
            good = lit(&guest("teams-on-refresh-failure")),
            bad = lit(&not_wasm),
        ),
    )
    .unwrap();
    let run = triggerfish(&["plugins", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    let out = &run.stdout;
    assert!(out.contains("good\n"), "{out}");
    assert!(
        out.contains("triggers   data-source-refresh-failed, full-refresh-completed"),
        "{out}"
    );
    assert!(
        out.contains("grants     teams: ops; email groups: -"),
        "{out}"
    );
    assert!(
        out.contains("limits     timeout 5000 ms, memory 64 MiB"),
        "{out}"
    );
    assert!(out.contains("check      ok (sha256 "), "{out}");
    assert!(
        out.contains("not-a-component.wasm is not a valid WebAssembly component"),
        "{out}"
    );
    assert!(
        out.contains("cannot read component") && out.contains("nowhere.wasm"),
        "{out}"
    );
    assert!(
        run.stderr.contains("2 plugin(s) failed the check"),
        "{}",
        run.stderr
    );
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        "[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\ntriggers = [\"segment-crossed\"]\n",
    )
    .unwrap();
    let run = triggerfish(&["plugins", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(run.code, 0);
    let expected = format!(
        "error: {}:4: key `plugins[0].triggers`: unknown trigger 'segment-crossed' (expected one of: data-source-refresh-failed, data-source-refresh-succeeded, segment-threshold-crossed, measure-threshold-crossed, full-refresh-completed, unification-refresh-completed)",
        config.display()
    );
    assert_eq!(run.stderr.trim(), expected);
}

#[test]
fn fire_names_an_unknown_plugin_and_a_bad_payload() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ncache_dir = {}\n[[plugins]]\nname = \"p\"\ncomponent = {}\n",
            lit(&root().join("target/tf-test-cache")),
            lit(&guest("misbehaving"))
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = triggerfish(
        &[
            "fire",
            "--config",
            c,
            "--plugin",
            "q",
            "--event",
            "full-refresh-completed",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    assert_eq!(
        run.stderr.trim(),
        "error: no plugin named 'q' in the configuration (plugins: p)"
    );

    let run = triggerfish(
        &[
            "fire",
            "--config",
            c,
            "--plugin",
            "p",
            "--event",
            "segment-threshold-crossed",
            "--payload",
            "{\"curent\":3}",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("payload key 'curent' is not a field of segment-threshold-crossed"),
        "{}",
        run.stderr
    );

    let run = triggerfish(
        &[
            "fire",
            "--config",
            c,
            "--plugin",
            "p",
            "--event",
            "full-refresh-completed",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("outcome  ok"), "{}", run.stdout);
}

/// Text a plugin controls reaches the terminal with its control characters
/// escaped, on one line per log record, and its error cut to a bound.
#[test]
fn fire_escapes_what_a_plugin_prints_and_bounds_its_error() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ncache_dir = {}\n[[plugins]]\nname = \"hostile\"\ncomponent = {}\n[plugins.config]\nmode = \"hostile-text\"\n",
            lit(&root().join("target/tf-test-cache")),
            lit(&guest("misbehaving")),
        ),
    )
    .unwrap();
    let run = triggerfish(
        &[
            "fire",
            "--config",
            config.to_str().unwrap(),
            "--plugin",
            "hostile",
            "--event",
            "full-refresh-completed",
        ],
        &[],
    );
    assert_ne!(run.code, 0);
    for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains('\u{1b}'),
            "ESC reached the terminal on {name}"
        );
        assert!(
            !text.contains('\u{7}'),
            "BEL reached the terminal on {name}"
        );
        assert!(text.len() < 64 * 1024, "{name} is {} bytes", text.len());
    }
    assert!(
        run.stdout
            .contains("fine\\n2026-01-01T00:00:00Z ERROR triggerfish: forged\\u{1b}]0;pwned\\u{7}"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a log line was forged: {}",
        run.stdout
    );
    assert!(run.stdout.contains("more bytes]"), "{}", run.stdout);
}

/// `entities list | head -1`-style readers: a closed stdout ends the
/// command quietly, without a panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("rows.csv");
    let mut csv = String::from("Id,Name\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},name-{i}\n"));
    }
    std::fs::write(&data, csv).unwrap();
    let cfg = config.to_str().unwrap();
    let import = triggerfish(
        &[
            "entities",
            "import",
            "--config",
            cfg,
            "--entity",
            "Rows",
            "--key",
            "Id",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(import.code, 0, "{}", import.stderr);
    for args in [
        vec![
            "entities", "get", "--config", cfg, "--entity", "Rows", "--all",
        ],
        vec!["entities", "list", "--config", cfg],
    ] {
        let mut child = std::process::Command::new(support::triggerfish_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then hang up, as `head -c1` does.
        let mut stdout = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut stdout, &mut one).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// A planted secret (a webhook URL whose path and signature are the secret,
/// at an endpoint that echoes them back in its error) appears in no output:
/// not the CLI's stdout or stderr, not the host's debug log, not the JSON
/// outcome, not what the plugin was told, not `plugins`.
#[test]
fn a_planted_webhook_secret_appears_in_no_output() {
    let teams = support::TeamsStub::start();
    let secret_url = format!(
        "http://{}/echo/SECRETPATH-7f3a9c/run?api-version=1&sig=SECRETSIG-b81d2e",
        teams.addr
    );
    let dir = tempdir();
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ncache_dir = {}\n[teams.channels.ops]\nwebhook_url_env = \"TF_TEST_SECRET_WEBHOOK\"\n\
             [[plugins]]\nname = \"poster\"\ncomponent = {}\n[plugins.grants]\nteams = [\"ops\"]\n\
             [plugins.config]\nmode = \"teams\"\nchannel = \"ops\"\n",
            lit(&root().join("target/tf-test-cache")),
            lit(&guest("misbehaving")),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = [
        ("TF_TEST_SECRET_WEBHOOK", secret_url.as_str()),
        ("TRIGGERFISH_LOG", "debug"),
    ];
    let fired = triggerfish(
        &[
            "fire",
            "--config",
            cfg,
            "--plugin",
            "poster",
            "--event",
            "data-source-refresh-failed",
        ],
        &env,
    );
    let json = triggerfish(
        &[
            "fire",
            "--config",
            cfg,
            "--plugin",
            "poster",
            "--event",
            "data-source-refresh-failed",
            "--json",
        ],
        &env,
    );
    let listed = triggerfish(&["plugins", "--config", cfg], &env);
    assert_ne!(fired.code, 0, "the echoing endpoint answers 400");
    assert!(fired.stdout.contains("answered 400"), "{}", fired.stdout);
    assert_eq!(
        teams.requests.lock().unwrap().len(),
        2,
        "both fires reached the endpoint"
    );
    for (what, text) in [
        ("fire stdout", &fired.stdout),
        ("fire stderr (debug log)", &fired.stderr),
        ("fire --json stdout", &json.stdout),
        ("fire --json stderr", &json.stderr),
        ("plugins stdout", &listed.stdout),
        ("plugins stderr", &listed.stderr),
    ] {
        for secret in ["SECRETPATH-7f3a9c", "SECRETSIG-b81d2e"] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {what}:\n{text}"
            );
        }
    }
}

/// Compiled code is used only for the component it was compiled from: two
/// cache entries swapped on disk are refused and compiled again.
#[test]
fn swapped_compile_cache_entries_are_recompiled_not_run() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\ncache_dir = {}\n[[plugins]]\nname = \"a\"\ncomponent = {}\n[[plugins]]\nname = \"b\"\ncomponent = {}\n",
            lit(&cache),
            lit(&guest("noop")),
            lit(&guest("count-customers")),
        ),
    )
    .unwrap();
    let plugins = || triggerfish(&["plugins", "--config", config.to_str().unwrap()], &[]);
    let from_cache = |out: &str| out.matches(", compiled code from cache").count();

    let first = plugins();
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(from_cache(&first.stdout), 0, "{}", first.stdout);
    let second = plugins();
    assert_eq!(from_cache(&second.stdout), 2, "{}", second.stdout);

    let mut entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (x, y) = (&entries[0], &entries[1]);
    let swap = dir.path().join("swap");
    std::fs::rename(x, &swap).unwrap();
    std::fs::rename(y, x).unwrap();
    std::fs::rename(&swap, y).unwrap();

    let third = plugins();
    assert_eq!(third.code, 0, "{}{}", third.stdout, third.stderr);
    assert_eq!(from_cache(&third.stdout), 0, "{}", third.stdout);
    assert_eq!(
        third
            .stderr
            .matches("compiled code in the cache refused (it was compiled from another component or by another host version); compiling again")
            .count(),
        2,
        "{}",
        third.stderr
    );
    // The entries were rewritten from the right components.
    let fourth = plugins();
    assert_eq!(from_cache(&fourth.stdout), 2, "{}", fourth.stdout);
}

/// keygen, sign, verify; then a host that requires signatures refuses a
/// tampered component, an untrusted signer and a wrong pinned digest, each
/// naming the plugin and the cause.
#[test]
fn signatures_and_pins_are_checked_before_a_component_is_compiled() {
    let dir = tempdir();
    let key = dir.path().join("signing.key");
    let made = triggerfish(&["plugin", "keygen", "--out", key.to_str().unwrap()], &[]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let public = std::fs::read_to_string(dir.path().join("signing.key.pub"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        made.stdout.contains(&format!("public key: {public}")),
        "{}",
        made.stdout
    );
    let component = dir.path().join("p.wasm");
    std::fs::copy(guest("noop"), &component).unwrap();
    let c = component.to_str().unwrap();
    let signed = triggerfish(&["plugin", "sign", "--key", key.to_str().unwrap(), c], &[]);
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let verified = triggerfish(&["plugin", "verify", c, "--trust", &public], &[]);
    assert_eq!(
        verified.stdout.trim(),
        format!("{c}: good signature by {public}")
    );

    let config = dir.path().join("triggerfish.toml");
    let write = |trusted: &str, pin: &str| {
        std::fs::write(
            &config,
            format!(
                "[host]\ncache_dir = {}\ntrusted_keys = [\"{trusted}\"]\nrequire_signatures = true\n[[plugins]]\nname = \"p\"\ncomponent = \"p.wasm\"\ntriggers = [\"full-refresh-completed\"]\n{pin}",
                lit(&root().join("target/tf-test-cache"))
            ),
        )
        .unwrap()
    };
    let cfg = config.to_str().unwrap();
    let fire = || {
        triggerfish(
            &[
                "fire",
                "--config",
                cfg,
                "--plugin",
                "p",
                "--event",
                "full-refresh-completed",
            ],
            &[],
        )
    };
    write(&public, "");
    assert_eq!(fire().code, 0);

    // Signed by a key the config does not trust.
    let other = "ed25519:".to_owned() + &"11".repeat(32);
    write(&other, "");
    let run = fire();
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains(&format!(
            "plugin 'p': component {} refused: signed by {public}, which is not among the trusted keys",
            component.display()
        )),
        "{}",
        run.stderr
    );

    // A pinned digest that differs.
    write(&public, &format!("sha256 = \"{}\"\n", "0".repeat(64)));
    let run = fire();
    assert!(
        run.stderr
            .contains(&format!("but the config pins {}", "0".repeat(64))),
        "{}",
        run.stderr
    );

    // Altered after signing.
    write(&public, "");
    let mut bytes = std::fs::read(&component).unwrap();
    bytes.push(0);
    std::fs::write(&component, bytes).unwrap();
    let run = fire();
    assert!(
        run.stderr.contains(&format!(
            "plugin 'p': component {c} refused: signature {c}.sig does not match the component (altered after signing?)"
        )),
        "{}",
        run.stderr
    );
    let checked = triggerfish(&["plugins", "--config", cfg], &[]);
    assert!(
        checked.stdout.contains("check      FAILED: component"),
        "{}",
        checked.stdout
    );
    let verified = triggerfish(&["plugin", "verify", c], &[]);
    assert_ne!(verified.code, 0);
}
