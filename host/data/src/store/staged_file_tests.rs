//! Computed entities staged as files of their own
//! ([`Publication::replace_entity_paged_with`]) and patched as copies.

use rusqlite::types::{Value, ValueRef};

use super::{files, EntityDb, Publication, Sink, StoreError};
use crate::odata::ColumnType;

fn cols() -> Vec<(String, ColumnType)> {
    vec![
        ("Id".into(), ColumnType::String),
        ("N".into(), ColumnType::Integer),
    ]
}

fn store() -> (tempfile::TempDir, EntityDb) {
    let dir = tempfile::tempdir().unwrap();
    let store = EntityDb::open(&dir.path().join("s.sqlite"), Default::default()).unwrap();
    (dir, store)
}

/// Stage `keys` (each with its position as `N`) as entity `C`, two rows a
/// batch.
fn stage(p: &mut Publication<'_>, keys: &[&str]) -> Result<u64, StoreError> {
    p.replace_entity_paged_with("C", "Id", &cols(), |sink: &mut dyn Sink| {
        let rows: Vec<[ValueRef<'_>; 2]> = (0i64..)
            .zip(keys)
            .map(|(n, k)| [ValueRef::Text(k.as_bytes()), ValueRef::Integer(n)])
            .collect();
        let tagged: Vec<(u64, &[ValueRef<'_>])> = (1..).zip(rows.iter().map(|r| &r[..])).collect();
        for batch in tagged.chunks(2) {
            sink.push_batch(batch).map_err(|(_, e)| e)?;
        }
        Ok::<(), StoreError>(())
    })
}

/// `sql`'s rows as `Id:N`, in its order.
fn read(store: &EntityDb, sql: &str) -> Vec<String> {
    store
        .read_snapshot(|c| {
            let mut stmt = c.prepare(sql)?;
            let rows = stmt.query_map([], |r| {
                Ok(format!(
                    "{}:{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?
                ))
            })?;
            rows.collect()
        })
        .unwrap()
}

fn files_in(store: &EntityDb) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(files::dir_of(store.path()))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn file_of(store: &EntityDb) -> Option<String> {
    store
        .read_snapshot(|c| {
            c.query_row("SELECT file FROM _tf_entities WHERE name = 'C'", [], |r| {
                r.get(0)
            })
        })
        .unwrap()
}

#[test]
fn a_staged_file_is_read_by_the_engine_and_published_whole() {
    let (_dir, store) = store();
    let mut p = store.publication();
    // Keys ascend, then some fall below: those are set aside, and SQLite
    // inserts them once the pages are written.
    let keys = ["a", "c", "e", "g", "b", "d", "f"];
    assert_eq!(stage(&mut p, &keys).unwrap(), 7);
    let staged = p.table("C");
    assert!(staged.starts_with("\"tf_staged_C\"."), "{staged}");
    assert_eq!(
        read(&store, &format!("SELECT Id, N FROM {staged} ORDER BY Id")),
        ["a:0", "b:4", "c:1", "d:5", "e:2", "f:6", "g:3"]
    );
    assert!(store.meta("C").is_err(), "invisible until published");
    assert_eq!(files_in(&store).len(), 1, "no scratch file left");
    p.publish().unwrap();
    assert_eq!(store.meta("C").unwrap().rows, 7);
    let file = file_of(&store).expect("published as a file");
    assert_eq!(files_in(&store), [file]);
    let sql = "SELECT Id, N FROM ent_C WHERE Id IN ('a', 'f') ORDER BY Id";
    assert_eq!(read(&store, sql), ["a:0", "f:6"]);
    let check: String = store
        .read_snapshot(|c| c.query_row("PRAGMA \"tf_file_C\".integrity_check", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_duplicate_key_is_named_as_an_insert_would_and_leaves_no_file() {
    let (_dir, store) = store();
    // Found while paging, among rows set aside (by SQLite's index), and
    // between the two.
    let cases = [
        (&["a", "b", "b"][..], "row 3: duplicate key 'b'"),
        (&["c", "d", "a", "b", "a"][..], "row 5: duplicate key 'a'"),
        (&["b", "c", "a", "b"][..], "row 4: duplicate key 'b'"),
    ];
    for (keys, at) in cases {
        let mut p = store.publication();
        let e = stage(&mut p, keys).unwrap_err().to_string();
        assert_eq!(e, format!("entity 'C', {at} in field 'Id'"));
        drop(p);
        assert_eq!(files_in(&store), Vec::<String>::new(), "{keys:?}");
    }
}

#[test]
fn an_unpublished_file_goes_and_the_live_one_stays() {
    let (_dir, store) = store();
    let mut p = store.publication();
    stage(&mut p, &["a", "b"]).unwrap();
    p.publish().unwrap();
    let live = file_of(&store).unwrap();
    {
        let mut p = store.publication();
        stage(&mut p, &["x", "y", "z"]).unwrap();
        // Staged again: the first staged file goes at once.
        stage(&mut p, &["x", "y"]).unwrap();
        assert_eq!(files_in(&store).len(), 2);
    }
    assert_eq!(files_in(&store), [live]);
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C ORDER BY Id"),
        ["a:0", "b:1"]
    );
}

/// A store whose entity "C" holds a, b and c (0, 1, 2) in a file: the
/// file's name.
fn published_abc() -> (tempfile::TempDir, EntityDb, String) {
    let (dir, store) = store();
    let mut p = store.publication();
    stage(&mut p, &["a", "b", "c"]).unwrap();
    p.publish().unwrap();
    let live = file_of(&store).unwrap();
    (dir, store, live)
}

#[test]
fn a_patch_of_an_entity_in_a_file_is_published_as_a_patched_copy() {
    let (_dir, store, before) = published_abc();
    let mut p = store.publication();
    let added = vec![
        Ok(vec![Value::Text("b".into()), Value::Integer(20)]),
        Ok(vec![Value::Text("d".into()), Value::Integer(3)]),
    ];
    let deleted = [Value::Text("c".into())];
    assert_eq!(
        p.patch_entity_with("C", deleted, super::pushing(added))
            .unwrap(),
        3
    );
    p.publish().unwrap();
    let after = file_of(&store).unwrap();
    assert_ne!(before, after, "a published file never changes");
    assert_eq!(files_in(&store), [after]);
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C ORDER BY Id"),
        ["a:0", "b:20", "d:3"]
    );
    let meta = store.meta("C").unwrap();
    assert_eq!((meta.rows, meta.generation), (3, 2));
}

#[test]
fn a_copy_made_ahead_is_patched_when_used_and_removed_when_not() {
    let (_dir, store, live) = published_abc();
    {
        // Copied ahead, never patched: the copy goes with the publication.
        let mut p = store.publication();
        p.copy_ahead("C");
        p.copy_ahead("C");
        assert!(files_in(&store).len() <= 2, "one copy, however often asked");
    }
    assert_eq!(files_in(&store), std::slice::from_ref(&live));
    let mut p = store.publication();
    p.copy_ahead("C");
    let added = vec![Ok(vec![Value::Text("d".into()), Value::Integer(3)])];
    p.patch_entity_with("C", [Value::Text("a".into())], super::pushing(added))
        .unwrap();
    // The patch's copy is the one made ahead: no third file.
    assert_eq!(files_in(&store).len(), 2);
    p.publish().unwrap();
    let after = file_of(&store).unwrap();
    assert_ne!(after, live);
    assert_eq!(files_in(&store), [after]);
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C ORDER BY Id"),
        ["b:1", "c:2", "d:3"]
    );
}

#[test]
fn a_patch_staged_again_or_never_published_leaves_no_copy_behind() {
    let (_dir, store, live) = published_abc();
    let patch = |p: &mut Publication<'_>, n: i64| {
        let added = vec![Ok(vec![Value::Text("b".into()), Value::Integer(n)])];
        p.patch_entity_with("C", [Value::Text("a".into())], super::pushing(added))
    };
    {
        let mut p = store.publication();
        // Each patch's copy is made on a thread as soon as it is staged;
        // staging again finishes and removes the first copy.
        assert_eq!(patch(&mut p, 20).unwrap(), 2);
        assert_eq!(patch(&mut p, 30).unwrap(), 2);
        assert_eq!(
            read(
                &store,
                &format!("SELECT Id, N FROM {} ORDER BY Id", p.table("C"))
            ),
            ["b:30", "c:2"]
        );
    }
    assert_eq!(
        files_in(&store),
        std::slice::from_ref(&live),
        "dropped unpublished"
    );
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C ORDER BY Id"),
        ["a:0", "b:1", "c:2"]
    );
    let mut p = store.publication();
    patch(&mut p, 40).unwrap();
    p.publish().unwrap();
    let after = file_of(&store).unwrap();
    assert_ne!(after, live);
    assert_eq!(files_in(&store), [after]);
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C ORDER BY Id"),
        ["b:40", "c:2"]
    );
}

#[test]
fn a_key_that_jumps_ahead_is_set_aside_not_the_rows_after_it() {
    let (_dir, store) = store();
    let mut p = store.publication();
    let mut keys: Vec<String> = (1..=20).map(|i| format!("k{i:02}")).collect();
    keys.insert(2, "k99".into());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    stage(&mut p, &keys).unwrap();
    p.publish().unwrap();
    let in_rowid_order = read(&store, "SELECT Id, N FROM ent_C ORDER BY rowid");
    let ids: Vec<&str> = in_rowid_order
        .iter()
        .map(|r| r.split(':').next().unwrap())
        .collect();
    let mut expected: Vec<String> = (1..=20).map(|i| format!("k{i:02}")).collect();
    expected.push("k99".into());
    assert_eq!(ids, expected, "only k99 went in through SQLite, last");
    assert_eq!(
        read(&store, "SELECT Id, N FROM ent_C WHERE Id = 'k99'"),
        ["k99:2"]
    );
}
