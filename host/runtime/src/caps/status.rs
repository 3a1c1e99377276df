//! `status`: reports of what a plugin did for an event ("exported 1,203
//! rows to the CRM"), kept with the run's attempt. Like `log`, it reaches
//! nothing outside the run, so it needs no grant; its inputs are bounded.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::triggerfish::plugin::status::{self as wit, StatusLevel};
use crate::bindings::Error;
use crate::context::{one_line, CallContext, StatusReport};

/// Most status reports one attempt keeps; later ones are refused.
pub const MAX_STATUS_REPORTS: usize = 20;
/// Longest report message, in bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;
/// Largest report details (JSON text), in bytes.
pub const MAX_STATUS_DETAILS_BYTES: usize = 16 * 1024;

/// Per-instance state of the `status` capability.
pub struct StatusInstance {
    cx: CallContext,
}

impl StatusInstance {
    /// State for one delivery.
    pub fn new(cx: CallContext) -> Self {
        Self { cx }
    }
}

/// The level's name, as stored and shown.
pub fn level_name(level: StatusLevel) -> &'static str {
    match level {
        StatusLevel::Info => "info",
        StatusLevel::Success => "success",
        StatusLevel::Warning => "warning",
        StatusLevel::Error => "error",
    }
}

/// Check a report; the text says what is wrong.
fn check(message: &str, details: Option<&str>) -> Result<Option<String>, String> {
    if message.trim().is_empty() {
        return Err("a status report needs a message".into());
    }
    if message.len() > MAX_STATUS_MESSAGE_BYTES {
        return Err(format!(
            "the message is {} bytes; at most {MAX_STATUS_MESSAGE_BYTES} are kept",
            message.len()
        ));
    }
    let Some(details) = details else {
        return Ok(None);
    };
    if details.len() > MAX_STATUS_DETAILS_BYTES {
        return Err(format!(
            "the details are {} bytes; at most {MAX_STATUS_DETAILS_BYTES} are kept",
            details.len()
        ));
    }
    // Kept compact, so a report is one line wherever it is shown.
    let value: serde_json::Value = serde_json::from_str(details)
        .map_err(|e| format!("the details are not valid JSON: {e}"))?;
    Ok(Some(value.to_string()))
}

impl wit::Host for StatusInstance {
    async fn report(
        &mut self,
        level: StatusLevel,
        message: String,
        details_json: Option<String>,
    ) -> Result<(), Error> {
        let details = check(&message, details_json.as_deref()).map_err(Error::InvalidArgument)?;
        let kept = self.cx.report(StatusReport {
            level: level_name(level),
            message: one_line(&message),
            details,
            at_ms: triggerfish_data::journal::now_ms(),
        });
        if kept {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "at most {MAX_STATUS_REPORTS} status reports are kept per attempt"
            )))
        }
    }
}

/// Add `status` to the linker; `get` finds this capability's state in the
/// store data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StatusInstance,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<StatusInstance>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_checked_and_bounded() {
        assert_eq!(
            check("ok", Some(r#"{ "rows": 3 }"#)).unwrap().unwrap(),
            r#"{"rows":3}"#
        );
        assert_eq!(check("ok", None).unwrap(), None);
        assert_eq!(
            check(" ", None).unwrap_err(),
            "a status report needs a message"
        );
        assert!(check("ok", Some("{nope"))
            .unwrap_err()
            .starts_with("the details are not valid JSON: "));
        assert!(check(&"m".repeat(MAX_STATUS_MESSAGE_BYTES + 1), None)
            .unwrap_err()
            .contains("at most 1024"));
        let big = format!("\"{}\"", "d".repeat(MAX_STATUS_DETAILS_BYTES));
        assert!(check("ok", Some(&big))
            .unwrap_err()
            .contains("at most 16384"));
    }

    #[test]
    fn an_attempt_keeps_a_bounded_number_of_reports() {
        let cx = CallContext::new("p", "e", std::time::Instant::now());
        let report = || StatusReport {
            level: "info",
            message: "m".into(),
            details: None,
            at_ms: 0,
        };
        for _ in 0..MAX_STATUS_REPORTS {
            assert!(cx.report(report()));
        }
        assert!(!cx.report(report()));
        assert_eq!(cx.take_record().reports.len(), MAX_STATUS_REPORTS);
    }
}
