//! `email`: send mail through the host's SMTP relay, only to granted groups
//! and domains.

use std::collections::BTreeMap;
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as MailMessage, Tokio1Executor};
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::email::{self as wit, Message};
use crate::bindings::Error;
use crate::context::{CallContext, Delivery, DeliveryStatus};
use crate::grants::{Granter, Recipient};
use crate::outbox::Outbox;
use crate::settings::{DeliveryMode, Settings, TlsMode};

/// Most recipients (after expanding groups) in one message.
pub const MAX_RECIPIENTS: usize = 100;
/// Largest body (text + html) accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest recipient entry (an address or group name) as the guest writes
/// it; RFC 5321 allows 254 bytes for an address.
pub const MAX_RECIPIENT_BYTES: usize = 320;
/// Longest subject (RFC 5322's line limit).
pub const MAX_SUBJECT_BYTES: usize = 998;

/// Errors building the email service from configuration.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("{file}: email: environment variable {var} ({key}) is not set")]
    MissingEnv {
        file: String,
        var: String,
        key: &'static str,
    },
    #[error("{file}: email: {message}")]
    Invalid { file: String, message: String },
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(Outbox),
}

/// Host-wide email service.
pub struct EmailService {
    from: Mailbox,
    groups: BTreeMap<String, Vec<Mailbox>>,
    transport: Transport,
    describe_relay: String,
}

impl std::fmt::Debug for EmailService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailService")
            .field("from", &self.from.to_string())
            .field("relay", &self.describe_relay)
            .finish_non_exhaustive()
    }
}

impl EmailService {
    /// Build from `[email]`; `None` when email is not configured.
    pub fn new(settings: &Settings) -> Result<Option<Self>, EmailSetupError> {
        let Some(e) = &settings.email else {
            return Ok(None);
        };
        let file = settings.origin.display().to_string();
        let invalid = |message: String| EmailSetupError::Invalid {
            file: file.clone(),
            message,
        };
        let from: Mailbox = e
            .from
            .parse()
            .map_err(|err| invalid(format!("from: {err}")))?;
        let mut groups = BTreeMap::new();
        for (name, members) in &e.groups {
            let mut list = Vec::new();
            for m in members {
                list.push(
                    m.parse::<Mailbox>()
                        .map_err(|err| invalid(format!("groups.{name}: '{m}': {err}")))?,
                );
            }
            groups.insert(name.clone(), list);
        }
        let (transport, describe_relay) = match e.delivery_mode() {
            DeliveryMode::Outbox => (
                Transport::Outbox(Outbox::new(&settings.state_dir)),
                "outbox".to_owned(),
            ),
            DeliveryMode::Send => {
                let host = e
                    .smtp_host
                    .clone()
                    .ok_or_else(|| invalid("smtp_host is required to send".into()))?;
                let port = e.port();
                let mut builder = match e.tls {
                    TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                    TlsMode::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                            .map_err(|err| invalid(format!("smtp_host '{host}': {err}")))?
                    }
                    TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                        .map_err(|err| invalid(format!("smtp_host '{host}': {err}")))?,
                }
                .port(port);
                if let (Some(u), Some(p)) = (&e.username_env, &e.password_env) {
                    let get = |var: &String, key| {
                        std::env::var(var).map_err(|_| EmailSetupError::MissingEnv {
                            file: file.clone(),
                            var: var.clone(),
                            key,
                        })
                    };
                    builder = builder.credentials(Credentials::new(
                        get(u, "username_env")?,
                        get(p, "password_env")?,
                    ));
                }
                (Transport::Smtp(builder.build()), format!("{host}:{port}"))
            }
        };
        Ok(Some(Self {
            from,
            groups,
            transport,
            describe_relay,
        }))
    }

    /// Expand and check recipients.
    fn resolve(
        &self,
        granter: &Granter,
        list: &[String],
        out: &mut Vec<Mailbox>,
    ) -> Result<(), Error> {
        for r in list {
            let r = r.trim();
            match Recipient::classify(r) {
                Recipient::Group(g) => {
                    granter
                        .email_recipient(&Recipient::Group(g))
                        .map_err(crate::caps::denied)?;
                    let members = self.groups.get(g).ok_or_else(|| {
                        Error::NotFound(format!("email group '{g}' is not configured"))
                    })?;
                    out.extend(members.iter().cloned());
                }
                Recipient::Address(a) => {
                    let mb: Mailbox = a.parse().map_err(|e| {
                        Error::InvalidArgument(format!("'{a}' is not an email address: {e}"))
                    })?;
                    granter
                        .email_recipient(&Recipient::Address(mb.email.as_ref()))
                        .map_err(crate::caps::denied)?;
                    out.push(mb);
                }
            }
        }
        Ok(())
    }

    /// Build the RFC 5322 message after checking every recipient.
    fn build(
        &self,
        granter: &Granter,
        cx: &CallContext,
        m: &Message,
    ) -> Result<(MailMessage, String), Error> {
        if m.to.is_empty() {
            return Err(Error::InvalidArgument(
                "email needs at least one 'to' recipient".into(),
            ));
        }
        // Sizes first: everything below does work per recipient.
        let entries = m.to.len() + m.cc.len();
        if entries > MAX_RECIPIENTS {
            return Err(Error::InvalidArgument(format!(
                "{entries} recipients; at most {MAX_RECIPIENTS} per message"
            )));
        }
        if let Some(long) =
            m.to.iter()
                .chain(&m.cc)
                .find(|r| r.len() > MAX_RECIPIENT_BYTES)
        {
            return Err(Error::InvalidArgument(format!(
                "a recipient of {} bytes; at most {MAX_RECIPIENT_BYTES}",
                long.len()
            )));
        }
        if m.subject.len() > MAX_SUBJECT_BYTES {
            return Err(Error::InvalidArgument(format!(
                "subject is {} bytes; at most {MAX_SUBJECT_BYTES}",
                m.subject.len()
            )));
        }
        if m.subject.contains(['\r', '\n']) {
            return Err(Error::InvalidArgument("subject must be one line".into()));
        }
        let body_len = m.text.len() + m.html.as_ref().map_or(0, String::len);
        if body_len > MAX_BODY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "body is {body_len} bytes; at most {MAX_BODY_BYTES} are accepted"
            )));
        }
        let mut to = Vec::new();
        let mut cc = Vec::new();
        self.resolve(granter, &m.to, &mut to)?;
        self.resolve(granter, &m.cc, &mut cc)?;
        dedupe(&mut to, &[]);
        let to_snapshot = to.clone();
        dedupe(&mut cc, &to_snapshot);
        if to.len() + cc.len() > MAX_RECIPIENTS {
            return Err(Error::InvalidArgument(format!(
                "{} recipients; at most {MAX_RECIPIENTS} per message",
                to.len() + cc.len()
            )));
        }
        let target = to
            .iter()
            .chain(cc.iter())
            .map(|m| m.email.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut b = MailMessage::builder()
            .from(self.from.clone())
            .subject(m.subject.clone())
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Triggerfish-Event"),
                cx.event_id.to_string(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Triggerfish-Plugin"),
                cx.plugin.to_string(),
            ));
        for mb in to {
            b = b.to(mb);
        }
        for mb in cc {
            b = b.cc(mb);
        }
        let built = match &m.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                m.text.clone(),
                html.clone(),
            )),
            None => b.singlepart(SinglePart::plain(m.text.clone())),
        }
        .map_err(|e| Error::InvalidArgument(format!("cannot build the message: {e}")))?;
        Ok((built, target))
    }

    async fn send(&self, granter: &Granter, cx: &CallContext, m: &Message) -> Result<(), Error> {
        let (mail, target) = self.build(granter, cx, m)?;
        let slot = match &cx.ledger {
            Some(l) => Some(l.slot(cx).await),
            None => None,
        };
        if let Some(earlier) = slot.as_ref().and_then(|s| s.earlier.clone()) {
            cx.delivered(Delivery {
                capability: "email",
                target,
                status: DeliveryStatus::AlreadySent(earlier),
                content: None,
            });
            return Ok(());
        }
        let result = match &self.transport {
            Transport::Outbox(outbox) => {
                let bytes = mail.formatted();
                outbox
                    .write("email", &cx.event_id, "eml", &bytes)
                    .map(|p| {
                        (
                            DeliveryStatus::Outbox(p),
                            Some(String::from_utf8_lossy(&bytes).into_owned()),
                        )
                    })
                    .map_err(|e| Error::Unavailable(format!("cannot write the email outbox: {e}")))
            }
            Transport::Smtp(smtp) => {
                match tokio::time::timeout(cx.remaining(), smtp.send(mail)).await {
                    Err(_) => Err(Error::DeadlineExceeded(format!(
                        "SMTP relay {} did not accept the message before the deadline",
                        self.describe_relay
                    ))),
                    Ok(Err(e)) if e.is_permanent() => Err(Error::InvalidArgument(format!(
                        "SMTP relay {} refused the message: {e}",
                        self.describe_relay
                    ))),
                    Ok(Err(e)) => Err(Error::Unavailable(format!(
                        "SMTP relay {} failed: {e}",
                        self.describe_relay
                    ))),
                    Ok(Ok(_)) => Ok((DeliveryStatus::Sent, None)),
                }
            }
        };
        match result {
            Ok((status, content)) => {
                if let Some(slot) = slot {
                    slot.record("email", format!("sent to {target}")).await;
                }
                cx.delivered(Delivery {
                    capability: "email",
                    target,
                    status,
                    content,
                });
                Ok(())
            }
            Err(e) => {
                cx.delivered(Delivery {
                    capability: "email",
                    target,
                    status: DeliveryStatus::Failed(crate::caps::describe(&e)),
                    content: None,
                });
                Err(e)
            }
        }
    }
}

fn dedupe(list: &mut Vec<Mailbox>, exclude: &[Mailbox]) {
    let key = |m: &Mailbox| m.email.to_string().to_ascii_lowercase();
    let mut seen: std::collections::HashSet<String> = exclude.iter().map(key).collect();
    list.retain(|m| seen.insert(key(m)));
}

/// Per-instance state of the `email` capability.
pub struct EmailInstance {
    service: Option<Arc<EmailService>>,
    granter: Arc<Granter>,
    cx: CallContext,
}

impl EmailInstance {
    /// State for one delivery.
    pub fn new(service: Option<Arc<EmailService>>, granter: Arc<Granter>, cx: CallContext) -> Self {
        Self {
            service,
            granter,
            cx,
        }
    }
}

impl wit::Host for EmailInstance {
    async fn send(&mut self, message: Message) -> Result<(), Error> {
        let Some(service) = &self.service else {
            return Err(Error::Unavailable(
                "email is not configured on this host ([email] is missing)".into(),
            ));
        };
        service.send(&self.granter, &self.cx, &message).await
    }
}

/// Add `email` to the linker; `get` finds this capability's state in
/// the store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut EmailInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<EmailInstance>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Grants;
    use crate::settings::EmailSettings;
    use std::path::PathBuf;
    use std::time::Instant;

    fn service() -> EmailService {
        let mut settings = Settings::new(
            PathBuf::from("/tmp/tf-email-test/t.toml"),
            PathBuf::from("/tmp/tf-email-test/.triggerfish"),
        );
        let group = |m: &[&str]| m.iter().map(|s| s.to_string()).collect();
        settings.email = Some(EmailSettings {
            mode: Some(DeliveryMode::Outbox),
            smtp_host: None,
            smtp_port: None,
            tls: TlsMode::default(),
            from: "Triggerfish <bot@example.com>".into(),
            username_env: None,
            password_env: None,
            groups: [
                (
                    "data-owners".to_owned(),
                    group(&["ann@example.com", "bob@example.com"]),
                ),
                ("ops".to_owned(), group(&["ops@example.com"])),
            ]
            .into(),
        });
        EmailService::new(&settings).unwrap().unwrap()
    }

    fn msg(to: &[&str]) -> Message {
        Message {
            to: to.iter().map(|s| s.to_string()).collect(),
            cc: vec![],
            subject: "s".into(),
            text: "t".into(),
            html: None,
        }
    }

    fn granter() -> Granter {
        Granter::new(Grants {
            email_groups: vec!["data-owners".into()],
            email_domains: vec!["example.org".into()],
            ..Grants::default()
        })
    }

    #[test]
    fn sizes_are_checked_before_any_work_per_recipient() {
        let s = service();
        let cx = CallContext::new("p", "e1", Instant::now());
        // Denied addresses: were they resolved first, the answer would be
        // `denied`, after work per address (quadratic de-duplication).
        let many: Vec<String> = (0..120_000).map(|i| format!("u{i}@evil.test")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            s.build(&granter(), &cx, &msg(&refs)).unwrap_err(),
            Error::InvalidArgument("120000 recipients; at most 100 per message".into())
        );
        let long = format!("{}@example.org", "a".repeat(400));
        assert_eq!(
            s.build(&granter(), &cx, &msg(&[&long])).unwrap_err(),
            Error::InvalidArgument("a recipient of 412 bytes; at most 320".into())
        );
    }

    #[test]
    fn groups_expand_and_ungranted_are_denied() {
        let s = service();
        let cx = CallContext::new("p", "e1", Instant::now());
        let (m, target) = s
            .build(&granter(), &cx, &msg(&["data-owners", "carl@example.org"]))
            .unwrap();
        assert_eq!(target, "ann@example.com, bob@example.com, carl@example.org");
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("X-Triggerfish-Event: e1"), "{text}");
        assert_eq!(
            s.build(&granter(), &cx, &msg(&["ops"])).unwrap_err(),
            Error::Denied("email group 'ops' is not granted to this plugin".into())
        );
        assert_eq!(
            s.build(&granter(), &cx, &msg(&["x@example.com"]))
                .unwrap_err(),
            Error::Denied(
                "email address 'x@example.com' is outside the domains granted to this plugin"
                    .into()
            )
        );
        assert!(matches!(
            s.build(&granter(), &cx, &msg(&[])),
            Err(Error::InvalidArgument(_))
        ));
    }
}
