//! How outcomes of plugin deliveries are shown on a terminal.

use std::fmt::Write as _;

use triggerfish_data::event::TriggerKind;
use triggerfish_runtime::context::DeliveryStatus;
use triggerfish_runtime::Outcome;

/// `text` as a JSON string: quoted, control characters escaped.
fn json_text(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A status report of a run, for `runs show`.
pub fn report_line(attempt: u32, r: &triggerfish_data::journal::Report) -> String {
    let details = r
        .details
        .as_deref()
        .map(|d| format!("  {d}"))
        .unwrap_or_default();
    format!("[{attempt}] report {}: {}{details}", r.level, r.message)
}

/// A write of a run, for `runs show`: a create with the item stored, an
/// update with each changed field's before and after.
pub fn write_line(w: &triggerfish_data::store::WriteRecord) -> String {
    let by = w.run.map(|r| format!(" (run {r})")).unwrap_or_default();
    let head = format!("write {} {} {}{by}", w.op, w.entity, json_text(&w.key));
    match (&w.before, &w.after) {
        (Some(serde_json::Value::Object(before)), serde_json::Value::Object(after)) => {
            let changed: Vec<String> = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, v)| {
                    let was = before.get(k).cloned().unwrap_or(serde_json::Value::Null);
                    format!("{k}: {was} -> {v}")
                })
                .collect();
            if changed.is_empty() {
                format!("{head}: no field changed")
            } else {
                format!("{head}: {}", changed.join(", "))
            }
        }
        (_, after) => format!("{head}: {after}"),
    }
}

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
    if !o.record.writes.is_empty() {
        let _ = writeln!(s, "writes:");
        for w in &o.record.writes {
            let again = if w.repeated {
                " (not written again: an earlier attempt of this run wrote it)"
            } else {
                ""
            };
            let _ = writeln!(s, "  {} {} {}{again}", w.op, w.entity, json_text(&w.key));
        }
        if o.record.dropped_writes > 0 {
            let _ = writeln!(s, "  ... {} more writes", o.record.dropped_writes);
        }
    }
    if !o.record.reports.is_empty() {
        let _ = writeln!(s, "status reports:");
        for r in &o.record.reports {
            let details = r
                .details
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            let _ = writeln!(s, "  {}: {}{details}", r.level, r.message);
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
