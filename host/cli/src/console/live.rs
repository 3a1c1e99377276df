//! Live updates: one task polls a cheap mark of the journal and the refresh
//! history; `/live` streams a server-sent event to each open page when it
//! changes, and the page fetches itself again.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use triggerfish_data::journal::Journal;
use triggerfish_data::store::EntityDb;

use crate::daemon::Shared;

/// How often the mark is read.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Pages streaming at once; more are refused (they can reload by hand).
pub const MAX_LIVE_PAGES: usize = 64;

/// Start the poller; the receiver's value changes whenever something new
/// was journaled or a refresh finished.
pub fn spawn_poller(
    journal: Arc<Journal>,
    store: Option<Arc<EntityDb>>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut last = None;
        let mut version = 0u64;
        loop {
            let j = journal.clone();
            let st = store.clone();
            let mark = tokio::task::spawn_blocking(move || {
                let journal = j.live_mark().ok()?;
                let refresh = match st {
                    Some(s) => s.latest_refresh().ok()?,
                    None => 0,
                };
                Some((journal, refresh))
            })
            .await
            .ok()
            .flatten();
            if mark.is_some() && mark != last {
                last = mark;
                version += 1;
                let _ = tx.send(version);
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
    rx
}

/// `GET /live`: an event named `changed` each time the mark moves.
pub async fn stream(State(s): State<Arc<Shared>>) -> Response {
    let Ok(permit) = s.console.live_pages.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("more than {MAX_LIVE_PAGES} pages are following live updates"),
        )
            .into_response();
    };
    let mut rx = s.console.live.clone();
    rx.mark_unchanged();
    let state: (watch::Receiver<u64>, OwnedSemaphorePermit) = (rx, permit);
    let events = stream::unfold(state, |(mut rx, permit)| async move {
        rx.changed().await.ok()?;
        let version = *rx.borrow_and_update();
        let event = Event::default().event("changed").data(version.to_string());
        Some((Ok::<_, Infallible>(event), (rx, permit)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
