//! How outcomes of plugin deliveries are shown on a terminal.

use std::fmt::Write as _;

use triggerfish_data::event::TriggerKind;
use triggerfish_runtime::context::DeliveryStatus;
use triggerfish_runtime::Outcome;

/// What a delivery did, as indented lines: outcome, deliveries (outbox
/// contents in full), captured log lines.
pub fn outcome_text(o: &Outcome, kind: TriggerKind) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "plugin   {}", o.plugin);
    let _ = writeln!(s, "event    {} ({kind})", o.event_id);
    let ms = o.duration.as_secs_f64() * 1000.0;
    let _ = match &o.result {
        Ok(()) => writeln!(s, "outcome  ok in {ms:.1} ms"),
        Err(f) => writeln!(s, "outcome  FAILED in {ms:.1} ms: {f}"),
    };
    if !o.record.deliveries.is_empty() {
        let _ = writeln!(s, "deliveries:");
        for d in &o.record.deliveries {
            let _ = match &d.status {
                DeliveryStatus::Sent => writeln!(s, "  {} -> {}: sent", d.capability, d.target),
                DeliveryStatus::AlreadySent(r) => writeln!(
                    s,
                    "  {} -> {}: not sent again (an earlier attempt did: {r})",
                    d.capability, d.target
                ),
                DeliveryStatus::Failed(e) => {
                    writeln!(s, "  {} -> {}: FAILED: {e}", d.capability, d.target)
                }
                DeliveryStatus::Outbox(p) => writeln!(
                    s,
                    "  {} -> {}: written to outbox {}",
                    d.capability,
                    d.target,
                    p.display()
                ),
            };
            if let (DeliveryStatus::Outbox(_), Some(content)) = (&d.status, &d.content) {
                for line in content.lines() {
                    let _ = writeln!(s, "    | {line}");
                }
            }
        }
    }
    if !o.record.logs.is_empty() {
        let _ = writeln!(s, "logs:");
        for l in &o.record.logs {
            let _ = writeln!(
                s,
                "  [{} {}] {}",
                l.level.as_str(),
                l.source.as_str(),
                l.message
            );
        }
        if o.record.dropped_logs > 0 {
            let _ = writeln!(s, "  ... {} more lines dropped", o.record.dropped_logs);
        }
    }
    s
}
