//! The two example flows in every guest language: Python (componentize-py),
//! JavaScript (componentize-js), C (clang + wasi-libc, componentized by the
//! host) and Rust. Each port is built from source with `triggerfish plugin
//! build`, run end to end against the loopback Teams stand-in and a real SMTP
//! server, and must do exactly what the Rust example does.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use support::{
    arg, build_plugin, email_flow_config, guest, root, teams_flow_config, tempdir, triggerfish,
    SmtpServer, TeamsStub,
};

/// Builds of this run, by plugin folder: each port is built once.
static BUILT: Mutex<Option<HashMap<PathBuf, PathBuf>>> = Mutex::new(None);

/// The component of an example: Rust from the build script, the others
/// built now, in place, by `triggerfish plugin build`.
fn component(lang: &str, flow: &str) -> PathBuf {
    if lang == "rust" {
        return guest(flow);
    }
    let dir = root().join("plugins").join(lang).join(flow);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    built
        .get_or_insert_with(HashMap::new)
        .entry(dir.clone())
        .or_insert_with(|| build_plugin(&dir, &[]))
        .clone()
}

const FAILURE: &str = r#"{"id":"evt-42","occurred_at":"2026-03-01T08:00:00Z","source":"crm-contacts","error":"row 17: 'Birthdate' is not a \"date\"","permanent":true,"row":17,"field":"Birthdate","attempts":1,"rows_read":16}"#;

/// Fire the refresh failure at `component`; the card the stand-in received.
fn teams_card(component: &Path, payload: &str) -> serde_json::Value {
    let stub = TeamsStub::start();
    let dir = tempdir();
    let config = teams_flow_config(dir.path(), &stub.url("/workflows"), component);
    let run = triggerfish(
        &[
            "fire",
            "--config",
            arg(&config),
            "--plugin",
            "teams-alert",
            "--event",
            "data-source-refresh-failed",
            "--payload",
            payload,
        ],
        &[],
    );
    assert_eq!(
        run.code,
        0,
        "{}: {}\n{}",
        component.display(),
        run.stdout,
        run.stderr
    );
    let got = stub.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, "/workflows");
    let body = &got[0].body;
    assert_eq!(body["type"], "message");
    let att = &body["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = att["content"].clone();
    assert_eq!(card["type"], "AdaptiveCard");
    card
}

/// What the SMTP server received for a segment crossing.
#[derive(Debug, PartialEq)]
struct Mail {
    rcpt: Vec<String>,
    subject: String,
    text: String,
    html: String,
}

fn email(component: &Path) -> Mail {
    let smtp = SmtpServer::start();
    let dir = tempdir();
    let config = email_flow_config(dir.path(), smtp.port, component);
    let run = triggerfish(
        &[
            "fire",
            "--config",
            arg(&config),
            "--plugin",
            "segment-mail",
            "--event",
            "segment-threshold-crossed",
            "--payload",
            r#"{"id":"evt-7","occurred_at":"2026-03-01T08:00:00Z","segment":"High value <&> customers","threshold":100,"previous":87,"current":123,"direction":"up"}"#,
        ],
        &[],
    );
    assert_eq!(
        run.code,
        0,
        "{}: {}\n{}",
        component.display(),
        run.stdout,
        run.stderr
    );
    let mails = smtp.wait_for(1);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.mail_from, "triggerfish@example.com");
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert!(m.data.contains("X-Triggerfish-Event: evt-7"), "{}", m.data);
    let parsed = mailparse::parse_mail(m.data.as_bytes()).unwrap();
    let subject = mailparse::MailHeaderMap::get_first_value(&parsed.headers[..], "Subject")
        .unwrap_or_default();
    let part = |mime: &str| {
        parsed
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().unwrap().replace("\r\n", "\n"))
            .unwrap_or_default()
    };
    Mail {
        rcpt,
        subject,
        text: part("text/plain"),
        html: part("text/html"),
    }
}

fn same_card_as_rust(lang: &str) {
    let rust = teams_card(&component("rust", "teams-on-refresh-failure"), FAILURE);
    let text = rust.to_string();
    assert!(
        text.contains("crm-contacts") && text.contains("Birthdate"),
        "{text}"
    );
    let port = teams_card(&component(lang, "teams-on-refresh-failure"), FAILURE);
    assert_eq!(port, rust, "{lang}'s card differs from Rust's");
    // Without the optional row and field, and a transient failure.
    let transient = r#"{"id":"evt-43","occurred_at":"2026-03-01T08:00:00Z","source":"erp","error":"timeout","permanent":false,"row":null,"field":null}"#;
    let rust = teams_card(&component("rust", "teams-on-refresh-failure"), transient);
    assert!(
        rust.to_string().contains("no (retries exhausted)"),
        "{rust}"
    );
    assert_eq!(
        teams_card(&component(lang, "teams-on-refresh-failure"), transient),
        rust
    );
}

fn same_email_as_rust(lang: &str) {
    let rust = email(&component("rust", "email-segment-owners"));
    assert_eq!(rust.rcpt, ["ann@example.com", "bob@example.com"]);
    assert!(
        rust.subject.contains("High value") && rust.subject.contains("100"),
        "{rust:?}"
    );
    assert!(
        rust.text.contains("87") && rust.text.contains("123"),
        "{rust:?}"
    );
    assert!(rust.html.contains("&lt;&amp;&gt;"), "{rust:?}");
    assert_eq!(email(&component(lang, "email-segment-owners")), rust);
}

#[test]
fn python_posts_the_same_teams_card_as_rust() {
    same_card_as_rust("python");
}

#[test]
fn python_emails_the_data_owners_like_rust() {
    same_email_as_rust("python");
}

#[test]
fn javascript_posts_the_same_teams_card_as_rust() {
    same_card_as_rust("js");
}

#[test]
fn javascript_emails_the_data_owners_like_rust() {
    same_email_as_rust("js");
}

#[test]
fn c_posts_the_same_teams_card_as_rust() {
    same_card_as_rust("c");
}

#[test]
fn c_emails_the_data_owners_like_rust() {
    same_email_as_rust("c");
}
