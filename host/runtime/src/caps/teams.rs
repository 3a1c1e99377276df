//! `teams`: post messages or Adaptive Cards to channels named in the host
//! configuration. Webhook URLs stay on the host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::teams::{self as wit, Message};
use crate::bindings::Error;
use crate::context::{CallContext, Delivery, DeliveryStatus};
use crate::grants::Granter;
use crate::outbox::Outbox;
use crate::secret::Secret;
use crate::settings::{DeliveryMode, Settings};

/// Largest card accepted (Teams rejects messages over about 28 KB).
pub const MAX_CARD_BYTES: usize = 28 * 1024;
/// Attempts per post, including the first.
pub const MAX_ATTEMPTS: u32 = 4;
/// First backoff between attempts; doubles each time.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
/// Longest response body read back from a webhook.
const MAX_RESPONSE_BYTES: usize = 4 * 1024;

/// Errors building the Teams service from configuration.
#[derive(Debug, thiserror::Error)]
pub enum TeamsSetupError {
    #[error("{file}: teams channel '{channel}': environment variable {var} (webhook_url_env) is not set")]
    MissingEnv {
        file: String,
        channel: String,
        var: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

#[derive(Debug)]
enum Target {
    Webhook(Secret<String>),
    Outbox,
}

/// Host-wide Teams service: resolved channels and one HTTP client.
#[derive(Debug)]
pub struct TeamsService {
    channels: BTreeMap<String, Target>,
    client: reqwest::Client,
    outbox: Outbox,
}

impl TeamsService {
    /// Resolve every configured channel (reading `webhook_url_env` now).
    pub fn new(settings: &Settings) -> Result<Self, TeamsSetupError> {
        let mut channels = BTreeMap::new();
        for (name, ch) in &settings.teams {
            let target = if ch.mode == Some(DeliveryMode::Outbox) {
                Target::Outbox
            } else if let Some(url) = &ch.webhook_url {
                Target::Webhook(Secret::new(url.clone()))
            } else if let Some(var) = &ch.webhook_url_env {
                match std::env::var(var) {
                    Ok(url) if !url.is_empty() => Target::Webhook(Secret::new(url)),
                    _ => {
                        return Err(TeamsSetupError::MissingEnv {
                            file: settings.origin.display().to_string(),
                            channel: name.clone(),
                            var: var.clone(),
                        })
                    }
                }
            } else {
                Target::Outbox
            };
            channels.insert(name.clone(), target);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("triggerfish/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(TeamsSetupError::Client)?;
        Ok(Self {
            channels,
            client,
            outbox: Outbox::new(&settings.state_dir),
        })
    }

    async fn post(
        &self,
        cx: &CallContext,
        channel: &str,
        card: serde_json::Value,
    ) -> Result<(), Error> {
        let target = self.channels.get(channel).ok_or_else(|| {
            Error::NotFound(format!("teams channel '{channel}' is not configured"))
        })?;
        let envelope = envelope(card);
        let slot = match &cx.ledger {
            Some(l) => Some(l.slot(cx).await),
            None => None,
        };
        if let Some(earlier) = slot.as_ref().and_then(|s| s.earlier.clone()) {
            cx.delivered(Delivery {
                capability: "teams",
                target: channel.to_owned(),
                status: DeliveryStatus::AlreadySent(earlier),
                content: None,
            });
            return Ok(());
        }
        let result = match target {
            Target::Outbox => {
                let body = serde_json::to_string_pretty(&envelope).unwrap_or_default();
                self.outbox
                    .write(
                        &format!("teams/{channel}"),
                        &cx.event_id,
                        "json",
                        body.as_bytes(),
                    )
                    .map(|p| (DeliveryStatus::Outbox(p), Some(body)))
                    .map_err(|e| Error::Unavailable(format!("cannot write the teams outbox: {e}")))
            }
            Target::Webhook(url) => self
                .send_with_retries(cx, channel, url.expose(), &envelope)
                .await
                .map(|()| (DeliveryStatus::Sent, None)),
        };
        match result {
            Ok((status, content)) => {
                if let Some(slot) = slot {
                    slot.record("teams", format!("posted to channel '{channel}'"))
                        .await;
                }
                cx.delivered(Delivery {
                    capability: "teams",
                    target: channel.to_owned(),
                    status,
                    content,
                });
                Ok(())
            }
            Err(e) => {
                cx.delivered(Delivery {
                    capability: "teams",
                    target: channel.to_owned(),
                    status: DeliveryStatus::Failed(crate::caps::describe(&e)),
                    content: None,
                });
                Err(e)
            }
        }
    }

    async fn send_with_retries(
        &self,
        cx: &CallContext,
        channel: &str,
        url: &str,
        envelope: &serde_json::Value,
    ) -> Result<(), Error> {
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = cx.remaining();
            if remaining.is_zero() {
                return Err(Error::DeadlineExceeded(format!(
                    "no time left to post to teams channel '{channel}'"
                )));
            }
            let sent =
                tokio::time::timeout(remaining, self.client.post(url).json(envelope).send()).await;
            let verdict = match sent {
                Err(_) => {
                    return Err(Error::DeadlineExceeded(format!(
                        "teams channel '{channel}' did not answer before the deadline"
                    )))
                }
                Ok(Err(e)) => Verdict::Retry {
                    after: None,
                    rate_limited: false,
                    why: format!(
                        "cannot reach the webhook of teams channel '{channel}': {}",
                        e.without_url()
                    ),
                },
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let body = redact(&read_body(resp).await, url);
                    classify(channel, status, &body, retry_after)
                }
            };
            match verdict {
                Verdict::Delivered => return Ok(()),
                Verdict::Fail(e) => return Err(e),
                Verdict::Retry {
                    after,
                    rate_limited,
                    why,
                } => {
                    let wait = after.unwrap_or(backoff);
                    let give_up = attempt >= MAX_ATTEMPTS || wait >= cx.remaining();
                    if give_up {
                        return Err(if rate_limited {
                            Error::RateLimited(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
                        } else {
                            Error::Unavailable(format!("{why} (after {attempt} attempts)"))
                        });
                    }
                    tracing::debug!(plugin = %cx.plugin, event = %cx.event_id, channel, attempt, wait_ms = wait.as_millis() as u64, "{why}; retrying");
                    tokio::time::sleep(wait).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }
}

async fn read_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= MAX_RESPONSE_BYTES {
            buf.truncate(MAX_RESPONSE_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// How one webhook answer is judged.
#[derive(Debug, PartialEq)]
enum Verdict {
    Delivered,
    Retry {
        after: Option<Duration>,
        rate_limited: bool,
        why: String,
    },
    Fail(Error),
}

/// Judge a webhook answer: Workflows answers 202; the legacy connector 200
/// with body `1`, and hides its failures in a 200 with some other text.
fn classify(channel: &str, status: u16, body: &str, retry_after: Option<Duration>) -> Verdict {
    let body = body.trim();
    let snippet: String = body.chars().take(300).collect();
    match status {
        200 if body == "1" => Verdict::Delivered,
        200 => Verdict::Fail(Error::Unavailable(format!(
            "teams channel '{channel}' rejected the message: {}",
            if snippet.is_empty() {
                "(empty answer)".into()
            } else {
                snippet
            }
        ))),
        201..=299 => Verdict::Delivered,
        429 => Verdict::Retry {
            after: retry_after,
            rate_limited: true,
            why: format!("teams channel '{channel}' answered 429 Too Many Requests"),
        },
        500..=599 => Verdict::Retry {
            after: retry_after,
            rate_limited: false,
            why: format!("teams channel '{channel}' answered {status}: {snippet}"),
        },
        400 | 413 => Verdict::Fail(Error::InvalidArgument(format!(
            "teams channel '{channel}' answered {status}: {snippet}"
        ))),
        _ => Verdict::Fail(Error::Unavailable(format!(
            "teams channel '{channel}' answered {status}: {snippet}"
        ))),
    }
}

/// `Retry-After` in seconds (HTTP dates are not worth honouring here). A
/// value too large for a `Duration` is no answer at all.
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// Remove the webhook's secret parts (its path, query and each query value,
/// plain or percent-encoded) from text an endpoint sent back, before that
/// text reaches a plugin, a log or the operator.
fn redact(text: &str, url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return text.replace(url, "[redacted]");
    };
    let mut secrets: Vec<String> = vec![url.to_owned()];
    if parsed.path().len() > 1 {
        secrets.push(parsed.path().to_owned());
    }
    if let Some(q) = parsed.query() {
        secrets.push(q.to_owned());
    }
    for (_, v) in parsed.query_pairs() {
        secrets.push(v.into_owned());
    }
    for segment in parsed.path_segments().into_iter().flatten() {
        secrets.push(segment.to_owned());
    }
    let encoded: Vec<String> = secrets
        .iter()
        .map(|s| url_encode(s))
        .filter(|e| !secrets.contains(e))
        .collect();
    secrets.extend(encoded);
    // Longest first, so a whole URL goes before the parts inside it; short
    // parts would only blank out ordinary words.
    secrets.retain(|s| s.len() >= 8);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in &secrets {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Workflows envelope around one card.
pub fn envelope(card: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": card,
        }]
    })
}

/// A card with one wrapped TextBlock.
pub fn text_card(text: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [{ "type": "TextBlock", "text": text, "wrap": true }]
    })
}

/// Parse and check a card supplied by a plugin.
pub fn parse_card(json: &str) -> Result<serde_json::Value, Error> {
    if json.len() > MAX_CARD_BYTES {
        return Err(Error::InvalidArgument(format!(
            "card is {} bytes; Teams accepts at most {MAX_CARD_BYTES}",
            json.len()
        )));
    }
    let card: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("card is not valid JSON: {e}")))?;
    match card.get("type").and_then(|t| t.as_str()) {
        Some("AdaptiveCard") => Ok(card),
        _ if !card.is_object() => Err(Error::InvalidArgument("card must be a JSON object".into())),
        _ => Err(Error::InvalidArgument(
            "card must have \"type\": \"AdaptiveCard\"".into(),
        )),
    }
}

/// Per-instance state of the `teams` capability.
pub struct TeamsInstance {
    service: Arc<TeamsService>,
    granter: Arc<Granter>,
    cx: CallContext,
}

impl TeamsInstance {
    /// State for one delivery.
    pub fn new(service: Arc<TeamsService>, granter: Arc<Granter>, cx: CallContext) -> Self {
        Self {
            service,
            granter,
            cx,
        }
    }
}

impl wit::Host for TeamsInstance {
    async fn post_message(&mut self, channel: String, message: Message) -> Result<(), Error> {
        self.granter
            .teams_channel(&channel)
            .map_err(crate::caps::denied)?;
        let card = match message {
            Message::Text(t) => {
                if t.len() > MAX_CARD_BYTES {
                    return Err(Error::InvalidArgument(format!(
                        "text is {} bytes; Teams accepts at most {MAX_CARD_BYTES}",
                        t.len()
                    )));
                }
                text_card(&t)
            }
            Message::Card(c) => parse_card(&c)?,
        };
        self.service.post(&self.cx, &channel, card).await
    }
}

/// Add `teams` to the linker; `get` finds this capability's state in
/// the store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut TeamsInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<TeamsInstance>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_teams_means_them() {
        assert_eq!(classify("ops", 202, "", None), Verdict::Delivered);
        assert_eq!(classify("ops", 200, "1", None), Verdict::Delivered);
        assert_eq!(
            classify("ops", 200, "Microsoft Teams endpoint returned HTTP error 429", None),
            Verdict::Fail(Error::Unavailable(
                "teams channel 'ops' rejected the message: Microsoft Teams endpoint returned HTTP error 429".into()
            ))
        );
        assert!(matches!(
            classify("ops", 429, "", Some(Duration::from_secs(2))),
            Verdict::Retry { after: Some(d), rate_limited: true, .. } if d == Duration::from_secs(2)
        ));
        assert!(matches!(
            classify("ops", 503, "busy", None),
            Verdict::Retry {
                rate_limited: false,
                ..
            }
        ));
        assert!(matches!(
            classify("ops", 400, "bad card", None),
            Verdict::Fail(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            classify("ops", 404, "", None),
            Verdict::Fail(Error::Unavailable(_))
        ));
    }

    #[test]
    fn cards_are_checked() {
        assert!(parse_card(r#"{"type":"AdaptiveCard","version":"1.4","body":[]}"#).is_ok());
        assert_eq!(
            parse_card("[1]"),
            Err(Error::InvalidArgument("card must be a JSON object".into()))
        );
        assert_eq!(
            parse_card(r#"{"type":"Message"}"#),
            Err(Error::InvalidArgument(
                "card must have \"type\": \"AdaptiveCard\"".into()
            ))
        );
        assert!(
            matches!(parse_card("{"), Err(Error::InvalidArgument(m)) if m.starts_with("card is not valid JSON"))
        );
    }

    #[test]
    fn text_becomes_one_textblock_in_the_workflows_envelope() {
        let e = envelope(text_card("hello"));
        assert_eq!(e["type"], "message");
        assert_eq!(
            e["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(e["attachments"][0]["content"]["body"][0]["text"], "hello");
        assert_eq!(
            e["attachments"][0]["content"]["body"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("1e300"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
    }

    #[test]
    fn echoed_webhook_secrets_are_redacted() {
        let url = "https://prod.example.com/workflows/abc123def456/triggers/manual/paths/invoke?api-version=1&sig=S3cr3tS1gnature%2Bx";
        let body = format!(
            "400 Bad Request: POST {url} failed; path /workflows/abc123def456/triggers/manual/paths/invoke; sig=S3cr3tS1gnature+x; sig=S3cr3tS1gnature%2Bx"
        );
        let red = redact(&body, url);
        assert!(!red.contains("S3cr3tS1gnature"), "{red}");
        assert!(!red.contains("abc123def456"), "{red}");
        assert!(
            red.starts_with("400 Bad Request: POST [redacted] failed"),
            "{red}"
        );
        assert_eq!(redact("all good", url), "all good");
    }
}
