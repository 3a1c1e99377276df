//! `/cluster`: the members with their heartbeats and plugin versions, the
//! refresher, the store generation, stream sizes, each plugin's consumer
//! lag and the dead letters, as this member's heartbeat last gathered them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{page, when};
use super::respond;
use crate::cluster::ClusterStatus;
use crate::daemon::Shared;

/// The page body for `status`, seen from member `me`.
pub fn render(me: &str, status: &ClusterStatus) -> Markup {
    html! {
        section {
            h2 { "Cluster" }
            dl {
                dt { "NATS" } dd { code { (status.nats) } }
                dt { "this member" } dd { (me) }
                dt { "refresher" } dd { (status.refresher.as_deref().unwrap_or("none: the lease is free")) }
                dt { "store generation" } dd {
                    @match &status.generation {
                        Some(g) => { (g.number) " (" (g.bytes) " bytes, by " (g.member) ", " (when(g.at_ms)) ")" }
                        None => { "none published yet" }
                    }
                }
                dt { "events" } dd { (status.events) }
                dt { "runs waiting" } dd { (status.runs_waiting) }
                dt { "dead letters" } dd { (status.dead_letters) }
            }
        }
        section {
            h2 { "Members (" (status.members.len()) ")" }
            table {
                thead { tr { th { "member" } th { "API" } th { "role" } th { "generation" } th { "in flight" } th { "succeeded" } th { "failed" } th { "redelivered" } th { "plugins" } th { "seen" } } }
                tbody {
                    @for m in &status.members {
                        tr {
                            td { (m.id) }
                            td { code { (m.api) } }
                            td { @if m.refresher { "refresher" } @else { "member" } }
                            td { (m.generation) }
                            td { (m.in_flight) }
                            td { (m.attempts_ok) }
                            td { (m.attempts_failed) }
                            td { (m.redelivered) }
                            td {
                                @for p in &m.plugins {
                                    code.digest { (p.name) " sha256:" (p.sha256.get(..12).unwrap_or(&p.sha256)) } " "
                                }
                            }
                            td { (when(m.seen_ms)) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Runs by plugin" }
            table {
                thead { tr { th { "plugin" } th { "not yet delivered" } th { "delivered, not acked" } th { "redelivered" } } }
                tbody {
                    @for c in &status.consumers {
                        tr { td { (c.plugin) } td { (c.pending) } td { (c.ack_pending) } td { (c.redelivered) } }
                    }
                }
            }
        }
    }
}

/// `GET /cluster`.
pub async fn cluster_page(State(s): State<Arc<Shared>>) -> Response {
    let body = match &s.cluster {
        None => {
            html! { p { "This daemon is not a cluster member: its configuration has no [cluster] section." } }
        }
        Some(m) => match m.status() {
            Some(status) => render(&m.id, &status),
            None => {
                html! { p { "Member " (m.id) ": the first heartbeat has not gathered the cluster's status yet." } }
            }
        },
    };
    respond(page(
        s.token.is_some(),
        "Cluster",
        "/cluster",
        html! {},
        body,
    ))
}
