//! The two flows the product is known for, end to end through the CLI:
//! a Teams card on a failed refresh, an email to the data owners on a segment
//! threshold; against a loopback Teams stand-in and a real SMTP server.

use crate::support;

use std::path::{Path, PathBuf};

use support::{guest, guest_dir, root, tempdir, triggerfish, SmtpServer, TeamsStub};

fn teams_config(dir: &Path, webhook_url: &str) -> PathBuf {
    support::teams_flow_config(dir, webhook_url, &guest("teams-on-refresh-failure"))
}

fn fire_failure(config: &Path) -> support::Run {
    triggerfish(
        &[
            "fire",
            "--config",
            config.to_str().unwrap(),
            "--plugin",
            "teams-alert",
            "--event",
            "data-source-refresh-failed",
            "--payload",
            r#"{"id":"evt-42","source":"crm-contacts","error":"row 17: 'Birthdate' is not a date","permanent":true,"row":17,"field":"Birthdate"}"#,
            "--json",
        ],
        &[],
    )
}

#[test]
fn teams_workflows_webhook_receives_the_card() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &stub.url("/workflows"));
    let run = fire_failure(&config);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let out = run.json();
    assert_eq!(out["ok"], true);
    assert_eq!(out["deliveries"][0]["capability"], "teams");
    assert_eq!(out["deliveries"][0]["target"], "ops");
    assert_eq!(out["deliveries"][0]["status"], "sent");

    let got = stub.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "/workflows");
    assert!(
        got[0].content_type.starts_with("application/json"),
        "{}",
        got[0].content_type
    );
    let body = &got[0].body;
    assert_eq!(body["type"], "message");
    assert_eq!(body["attachments"].as_array().map(Vec::len), Some(1));
    let att = &body["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    let text = card.to_string();
    assert!(text.contains("crm-contacts"), "{text}");
    assert!(text.contains("row 17: 'Birthdate' is not a date"), "{text}");
    assert!(text.to_lowercase().contains("permanent"), "{text}");
    // The webhook URL never appears in what the CLI prints.
    assert!(
        !run.stdout.contains(&stub.addr.to_string()),
        "{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains(&stub.addr.to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn teams_legacy_webhook_200_one_is_success() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &stub.url("/legacy"));
    let run = fire_failure(&config);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(stub.received().len(), 1);
}

#[test]
fn teams_legacy_webhook_200_with_error_text_is_a_failure() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &stub.url("/legacy-error"));
    let run = fire_failure(&config);
    assert_ne!(run.code, 0, "stdout:\n{}", run.stdout);
    let out = run.json();
    assert_eq!(out["ok"], false);
    let status = out["deliveries"][0]["status"]["failed"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        status.contains("teams channel 'ops' rejected the message: Microsoft Teams endpoint returned HTTP error 429"),
        "{status}"
    );
    assert!(
        run.stderr
            .contains("plugin 'teams-alert' failed on event evt-42"),
        "{}",
        run.stderr
    );
    // Not retried: the legacy answer is final.
    assert_eq!(stub.received().len(), 1);
}

#[test]
fn teams_429_is_retried_honouring_retry_after() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &stub.url("/throttled-once"));
    let run = fire_failure(&config);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(stub.received().len(), 2);
}

#[test]
fn teams_5xx_fails_after_retries_within_the_deadline() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), &stub.url("/down"));
    let run = fire_failure(&config);
    assert_ne!(run.code, 0);
    let out = run.json();
    let status = out["deliveries"][0]["status"]["failed"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        status.contains("answered 503: maintenance (after 4 attempts)"),
        "{status}"
    );
    assert_eq!(stub.received().len(), 4);
}

#[test]
fn webhook_url_from_environment_variable() {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_config(dir.path(), "unused");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "webhook_url = \"unused\"",
        "webhook_url_env = \"TF_TEST_OPS_WEBHOOK\"",
    );
    std::fs::write(&config, text).unwrap();
    let args = [
        "fire",
        "--config",
        config.to_str().unwrap(),
        "--plugin",
        "teams-alert",
        "--event",
        "data-source-refresh-failed",
        "--json",
    ];
    let missing = triggerfish(&args, &[]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("teams channel 'ops': environment variable TF_TEST_OPS_WEBHOOK (webhook_url_env) is not set"),
        "{}",
        missing.stderr
    );
    let url = stub.url("/workflows");
    let run = triggerfish(&args, &[("TF_TEST_OPS_WEBHOOK", &url)]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(stub.received().len(), 1);
}

fn email_config(dir: &Path, smtp_port: u16) -> PathBuf {
    support::email_flow_config(dir, smtp_port, &guest("email-segment-owners"))
}

#[test]
fn email_reaches_the_data_owners_through_a_real_smtp_server() {
    let smtp = SmtpServer::start();
    let dir = tempdir();
    let config = email_config(dir.path(), smtp.port);
    let run = triggerfish(
        &[
            "fire",
            "--config",
            config.to_str().unwrap(),
            "--plugin",
            "segment-mail",
            "--event",
            "segment-threshold-crossed",
            "--payload",
            r#"{"id":"evt-7","segment":"High value","threshold":100,"previous":87,"current":123,"direction":"up"}"#,
            "--json",
        ],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let mails = smtp.wait_for(1);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.mail_from, "triggerfish@example.com");
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["ann@example.com", "bob@example.com"]);
    let data = &m.data;
    assert!(
        data.contains("From: Triggerfish <triggerfish@example.com>"),
        "{data}"
    );
    assert!(
        data.contains("ann@example.com") && data.contains("bob@example.com"),
        "{data}"
    );
    let subject = data
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or_default();
    assert!(subject.contains("High value"), "{subject}");
    assert!(subject.contains("100"), "{subject}");
    assert!(data.contains("X-Triggerfish-Event: evt-7"), "{data}");
    assert!(data.contains("87") && data.contains("123"), "{data}");
}

#[test]
fn demo_config_delivers_both_flows_to_the_outbox() {
    // The shipped example, run as a user would, from a copy so the repo stays clean.
    let dir = tempdir();
    let src = root().join("examples/triggerfish.toml");
    let text = std::fs::read_to_string(&src).unwrap();
    let text = text.replace(
        "../target/wasm32-wasip2/release/",
        &format!("{}/", guest_dir().display()),
    );
    let config = dir.path().join("triggerfish.toml");
    std::fs::write(&config, text).unwrap();
    guest("teams-on-refresh-failure");

    let run = triggerfish(
        &[
            "fire",
            "--config",
            config.to_str().unwrap(),
            "--plugin",
            "teams-on-refresh-failure",
            "--event",
            "data-source-refresh-failed",
        ],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("outcome  ok"), "{}", run.stdout);
    assert!(
        run.stdout.contains("teams -> ops: written to outbox"),
        "{}",
        run.stdout
    );
    let outbox = dir.path().join(".triggerfish/outbox/teams/ops");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(files.len(), 1);
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap())
            .unwrap();
    assert_eq!(body["attachments"][0]["content"]["type"], "AdaptiveCard");

    let run = triggerfish(
        &[
            "fire",
            "--config",
            config.to_str().unwrap(),
            "--plugin",
            "email-segment-owners",
            "--event",
            "segment-threshold-crossed",
        ],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("email -> "), "{}", run.stdout);
    let eml_dir = dir.path().join(".triggerfish/outbox/email");
    let files: Vec<_> = std::fs::read_dir(&eml_dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(eml.contains("Subject: "), "{eml}");
    assert!(eml.contains("high-value-customers"), "{eml}");
}
