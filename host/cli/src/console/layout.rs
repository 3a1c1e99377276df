//! The page shell every console page shares, and small formatting helpers.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;

/// The navigation: (path, label).
const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/plugins", "Plugins"),
    ("/insights", "Sources, segments, measures"),
    ("/entities", "Entities"),
    ("/cluster", "Cluster"),
];

/// A whole page: `tools` sits above the live region (filter forms, so that
/// live updates never reset what is being typed), `body` is the live region
/// that is swapped when the journal changes. With `sign_out`, the navigation
/// offers to end the session (when the console asks for the token).
pub fn page(sign_out: bool, title: &str, current: &str, tools: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Triggerfish" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/chart.umd.min.js" defer {}
                script src="/assets/console.js" defer {}
            }
            body {
                nav {
                    span.brand { "Triggerfish" }
                    @for (path, label) in NAV {
                        a href=(path) class=[(path == current).then_some("current")] { (label) }
                    }
                    span.live #live-status title="Updates as runs and events are journaled" { "live" }
                    @if sign_out {
                        form.signout method="post" action="/logout" { button #sign-out type="submit" { "Sign out" } }
                    }
                }
                header {
                    h1 { (title) }
                    (tools)
                }
                main #live { (body) }
            }
        }
    }
}

/// A status word as a coloured badge.
pub fn badge(status: &str) -> Markup {
    let class = match status {
        "succeeded" | "ok" | "ready" | "success" => "ok",
        "dead" | "failed" | "failed, dead-lettered" | "error" => "bad",
        "retrying" | "failed, retrying" | "skipped" | "warning" => "warn",
        _ => "info",
    };
    html! { span class={"badge " (class)} data-status=(status) { (status) } }
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn when(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A duration in milliseconds, short.
pub fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// A chart for `console.js` to draw with Chart.js: the configuration as
/// JSON in a script element next to its canvas. `<` is escaped so that no
/// data can close the script element.
pub fn chart(id: &str, config: &Value) -> Markup {
    let json = config.to_string().replace('<', "\\u003c");
    html! {
        div.chart {
            canvas id=(id) data-chart=(id) {}
            script type="application/json" id={ (id) "-config" } { (PreEscaped(json)) }
        }
    }
}

/// An error box.
pub fn error_box(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}
