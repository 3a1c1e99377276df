use std::collections::HashSet;
use std::sync::Arc;

use super::*;
use crate::event::{build_event, TriggerKind};

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("store.sqlite")).unwrap();
    (dir, j)
}

fn new_event(id: &str, plugins: &[&str]) -> NewEvent {
    let payload = format!(r#"{{"id":"{id}"}}"#);
    NewEvent {
        event: build_event(TriggerKind::DataSourceRefreshFailed, Some(&payload)).unwrap(),
        origin: "test".into(),
        plugins: plugins.iter().map(|p| p.to_string()).collect(),
        hold_ms: 0,
    }
}

fn append(j: &Journal, events: Vec<NewEvent>) -> Vec<Appended> {
    j.wait(|j, r| j.append(events, r)).unwrap()
}

fn attempt(run: i64, verdict: Verdict, error: Option<&str>) -> Attempt {
    Attempt {
        reports: Vec::new(),
        run,
        started_ms: now_ms(),
        duration_ms: 3,
        verdict,
        error: error.map(str::to_owned),
        logs: vec![LogLine {
            level: "info".into(),
            source: "plugin".into(),
            text: "hello".into(),
        }],
    }
}

#[test]
fn an_event_appended_twice_gets_its_runs_once() {
    let (_d, j) = journal();
    let first = append(&j, vec![new_event("e1", &["a", "b"])]);
    assert_eq!(first[0].runs.len(), 2);
    assert!(!first[0].duplicate);
    let again = append(&j, vec![new_event("e1", &["a", "b"])]);
    assert!(again[0].duplicate);
    assert!(again[0].runs.is_empty());
    let runs = j
        .runs(&RunFilter {
            event: Some("e1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.status == "queued"));
}

#[test]
fn due_runs_skip_busy_ones_and_wait_for_their_time() {
    let (_d, j) = journal();
    let a = append(&j, vec![new_event("e1", &["p"]), new_event("e2", &["p"])]);
    let (r1, r2) = (a[0].runs[0], a[1].runs[0]);
    let due = j.due("p", now_ms(), 10, &HashSet::new()).unwrap();
    assert_eq!(due.iter().map(|d| d.run).collect::<Vec<_>>(), [r1, r2]);
    assert_eq!(due[0].event.id, "e1");
    let busy: HashSet<i64> = [r1].into();
    let due = j.due("p", now_ms(), 10, &busy).unwrap();
    assert_eq!(due.iter().map(|d| d.run).collect::<Vec<_>>(), [r2]);
    assert!(j.due("other", now_ms(), 10, &busy).unwrap().is_empty());

    let later = now_ms() + 60_000;
    j.wait(|j, r| {
        j.finish(
            vec![attempt(
                r1,
                Verdict::Retry { at_ms: later },
                Some("sink down"),
            )],
            r,
        )
    })
    .unwrap();
    let due = j.due("p", now_ms(), 10, &HashSet::new()).unwrap();
    assert_eq!(due.iter().map(|d| d.run).collect::<Vec<_>>(), [r2]);
    assert!(j.next_due("p").unwrap().unwrap() <= now_ms());
    assert_eq!(j.next_due("nobody").unwrap(), None);
    let due = j.due("p", later, 10, &HashSet::new()).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due.iter().find(|d| d.run == r1).unwrap().attempts, 1);
}

#[test]
fn dead_letters_replay_with_a_fresh_budget_and_keep_their_logs() {
    let (_d, j) = journal();
    let run = append(&j, vec![new_event("e1", &["p"])])[0].runs[0];
    j.wait(|j, r| j.finish(vec![attempt(run, Verdict::Dead, Some("boom"))], r))
        .unwrap();
    let dead = j
        .runs(&RunFilter {
            status: Some(RunStatus::Dead),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error.as_deref(), Some("boom"));
    assert!(j
        .due("p", now_ms(), 10, &HashSet::new())
        .unwrap()
        .is_empty());

    let replayed = j.wait(|j, r| j.replay(vec![run, 999], r)).unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].run, run);
    let new_run = replayed[0].new_run;
    assert_ne!(new_run, run);
    // The dead letter is retired; the replay is a new run with a budget of
    // its own, and each keeps its own attempts and logs.
    let old = j.run(run).unwrap().unwrap();
    assert_eq!(old.run.status, "replayed");
    assert_eq!(old.replayed_by, Some(new_run));
    let due = j.due("p", now_ms(), 10, &HashSet::new()).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].run, due[0].attempts, due[0].budget_from),
        (new_run, 0, 0)
    );
    j.wait(|j, r| j.finish(vec![attempt(new_run, Verdict::Succeeded, None)], r))
        .unwrap();
    let detail = j.run(new_run).unwrap().unwrap();
    assert_eq!(detail.run.status, "succeeded");
    assert_eq!(detail.run.replay_of, Some(run));
    assert_eq!(detail.run.attempts, 1);
    assert_eq!(detail.history.len(), 1);
    assert_eq!(old.logs.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1]);
    // Replaying the same run again does nothing: it was replayed already.
    assert!(j.wait(|j, r| j.replay(vec![run], r)).unwrap().is_empty());
    // A run that is waiting is not replayed.
    let waiting = append(&j, vec![new_event("e2", &["p"])])[0].runs[0];
    assert!(j
        .wait(|j, r| j.replay(vec![waiting], r))
        .unwrap()
        .is_empty());
}

#[test]
fn log_lines_and_texts_are_bounded() {
    let (_d, j) = journal();
    let run = append(&j, vec![new_event("e1", &["p"])])[0].runs[0];
    let mut a = attempt(run, Verdict::Succeeded, Some(&"e".repeat(10_000)));
    a.logs = (0..MAX_LOG_LINES_PER_ATTEMPT + 50)
        .map(|i| LogLine {
            level: "info".into(),
            source: "plugin".into(),
            text: format!("{i} {}", "x".repeat(10_000)),
        })
        .collect();
    j.wait(|j, r| j.finish(vec![a], r)).unwrap();
    let d = j.run(run).unwrap().unwrap();
    assert_eq!(d.run.error.unwrap().len(), MAX_STORED_TEXT_BYTES);
    assert_eq!(d.logs.len(), MAX_LOG_LINES_PER_ATTEMPT + 1);
    assert!(d
        .logs
        .iter()
        .all(|(_, l)| l.text.len() <= MAX_STORED_TEXT_BYTES));
    assert_eq!(
        d.logs.last().unwrap().1.text,
        "[50 more log lines not kept]"
    );
}

#[test]
fn prune_drops_finished_history_only() {
    let (_d, j) = journal();
    let a = append(
        &j,
        vec![new_event("old", &["p"]), new_event("open", &["p"])],
    );
    j.wait(|j, r| j.finish(vec![attempt(a[0].runs[0], Verdict::Succeeded, None)], r))
        .unwrap();
    let (events, runs) = j.wait(|j, r| j.prune(now_ms() + 1, r)).unwrap();
    assert_eq!((events, runs), (1, 1));
    let left = j.events(&EventFilter::default()).unwrap();
    assert_eq!(
        left.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["open"]
    );
}

#[test]
fn concurrent_appends_share_commits_and_all_land() {
    let (_d, j) = journal();
    let j = Arc::new(j);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let a = append(&j, vec![new_event(&format!("t{t}-{i}"), &["p"])]);
                    assert_eq!(a[0].runs.len(), 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = j.counts().unwrap();
    assert_eq!(c.runs_by_status, [("queued".to_string(), 2000)]);
    assert_eq!(
        c.events_by_trigger,
        [("data-source-refresh-failed".to_string(), 2000)]
    );
}

#[test]
fn the_sent_ledger_keeps_the_first_result() {
    let (_d, j) = journal();
    let key = SentKey {
        event_id: "e1".into(),
        plugin: "p".into(),
        call: 0,
    };
    assert_eq!(j.sent(&key).unwrap(), None);
    let k = key.clone();
    j.wait(|j, r| j.record_sent(k, "teams".into(), "ok".into(), r))
        .unwrap();
    let k = key.clone();
    j.wait(|j, r| j.record_sent(k, "teams".into(), "second".into(), r))
        .unwrap();
    assert_eq!(j.sent(&key).unwrap().as_deref(), Some("ok"));
}

#[test]
fn a_crossing_is_journaled_with_the_value_that_raised_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let store = crate::store::EntityDb::open(&path, Default::default()).unwrap();
    let raise = |previous: f64| {
        assert_eq!(previous, 0.0);
        (vec![new_event("crossed", &["p"])], vec![10.0])
    };
    let raised = store
        .record_watched_value_with_events("segment", "vip", 12.0, raise)
        .unwrap();
    assert_eq!(raised.len(), 1);
    drop(store);
    let j = Journal::open(&path).unwrap();
    let due = j.due("p", now_ms(), 10, &HashSet::new()).unwrap();
    assert_eq!(due[0].event.id, "crossed");
    let store = crate::store::EntityDb::open(&path, Default::default()).unwrap();
    assert_eq!(store.watched_value("segment", "vip").unwrap(), Some(12.0));
}

struct Everyone;

impl Router for Everyone {
    fn plugins_for(&self, _event: &crate::event::Event) -> Vec<String> {
        vec!["p".into()]
    }
}

struct Quiet;

impl crate::insights::Observer for Quiet {
    fn event(&mut self, _event: crate::event::Event) {}
}

/// A source's data committed, then a crash before its event was journaled:
/// the next refresh raises that event, once, marked recovered.
#[test]
fn a_source_import_whose_event_was_lost_is_recovered_once() {
    use crate::insights::{workspace::parse_workspace_file, InsightsEngine, Scope};
    use crate::odata::ColumnType;
    use crate::store::EntityDb;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crm.csv"), "Id,Email\n1,a@example.com\n").unwrap();
    let toml = "[[sources]]\nname = \"crm\"\npath = \"crm.csv\"\nkey = \"Id\"\n[sources.map]\nEmail = \"Email\"\n";
    let ws = parse_workspace_file(&dir.path().join("ws.toml"), toml).unwrap();
    let path = dir.path().join("store.sqlite");
    let engine = |ws| {
        InsightsEngine::new(ws, EntityDb::open(&path, Default::default()).unwrap())
            .with_journal(Arc::new(Everyone))
    };
    let first = engine(ws.clone());
    first.refresh(&Scope::Full, &mut Quiet).unwrap();
    // The "crash": the source's entity is replaced (generation 2) with no event.
    let cols = [
        ("Id".to_string(), ColumnType::String),
        ("Email".to_string(), ColumnType::String),
    ];
    let rows = [Ok(vec![
        rusqlite::types::Value::Text("1".into()),
        rusqlite::types::Value::Text("b@example.com".into()),
    ])];
    first
        .store()
        .replace_entity("Crm", "Id", &cols, rows)
        .unwrap();
    drop(first);
    let second = engine(ws);
    second.refresh(&Scope::Unification, &mut Quiet).unwrap();
    second.refresh(&Scope::Unification, &mut Quiet).unwrap();
    let j = Journal::open(&path).unwrap();
    let ids: Vec<String> = j
        .events(&EventFilter {
            trigger: Some("data-source-refresh-succeeded".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], "evt-recovered-crm-g2");
}

#[test]
fn a_journal_of_unique_runs_is_migrated_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE _tf_runs (
                id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, plugin TEXT NOT NULL,
                status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                budget_from INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,
                next_ms INTEGER NOT NULL, started_ms INTEGER, finished_ms INTEGER,
                duration_ms INTEGER, error TEXT, UNIQUE (event_id, plugin));
             INSERT INTO _tf_runs (event_id, plugin, status, attempts, created_ms, next_ms, error)
                 VALUES ('e1', 'p', 'dead', 3, 1, 1, 'boom');",
        )
        .unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let dead = j
        .runs(&RunFilter {
            status: Some(RunStatus::Dead),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (dead.len(), dead[0].attempts, dead[0].error.as_deref()),
        (1, 3, Some("boom"))
    );
    let replayed = j.wait(|j, r| j.replay(vec![dead[0].id], r)).unwrap();
    assert_eq!(
        replayed.len(),
        1,
        "a second run of the same event and plugin fits now"
    );
    drop(j);
    // Opening it again migrates nothing more, and the indexes are on the new table.
    let j = Journal::open(&path).unwrap();
    let detail = j.run(replayed[0].new_run).unwrap().unwrap();
    assert_eq!(detail.run.replay_of, Some(dead[0].id));
    let c = rusqlite::Connection::open(&path).unwrap();
    let indexed: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '_tf_runs' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexed,
        [
            "_tf_runs_by_event",
            "_tf_runs_replays",
            "_tf_runs_status",
            "_tf_runs_waiting"
        ]
    );
}

/// A store file gets the page size asked for whichever side creates it,
/// SQLite's default otherwise; an existing file keeps its own and opens as
/// before whatever is asked.
#[test]
fn a_new_store_file_has_the_page_size_asked_for_whoever_creates_it() {
    let page_size = |path: &std::path::Path| -> u32 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let by_journal = dir.path().join("j.sqlite");
    drop(Journal::open_with(&by_journal, 16384).unwrap());
    assert_eq!(page_size(&by_journal), 16384);
    let by_store = dir.path().join("s.sqlite");
    drop(crate::store::EntityDb::open_with(&by_store, Default::default(), 32768).unwrap());
    assert_eq!(page_size(&by_store), 32768);
    let default = dir.path().join("d.sqlite");
    drop(Journal::open(&default).unwrap());
    assert_eq!(page_size(&default), crate::store::DEFAULT_PAGE_SIZE);

    let store = crate::store::EntityDb::open_with(&default, Default::default(), 65536).unwrap();
    let j = Journal::open_with(&default, 65536).unwrap();
    append(&j, vec![new_event("e1", &["p"])]);
    drop((store, j));
    assert_eq!(page_size(&default), crate::store::DEFAULT_PAGE_SIZE);
}
