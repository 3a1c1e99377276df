//! Files as CRM and spreadsheet exports write them: fields separated by
//! `;`, headers with spaces and accents, in Windows' Western encoding. A
//! refresh loads them as written, the configuration naming columns as the
//! headers do; changing the separator or the encoding imports again.

use triggerfish_data::event::Event;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, RefreshReport, Scope};
use triggerfish_data::store::EntityDb;

struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event) {}
}

const WORKSPACE: &str = r#"
[[sources]]
name = "crm"
path = "export.csv"
delimiter = ";"
encoding = "windows-1252"
key = "Contact ID"
types = { "Code postal" = "string" }
[sources.map]
Email = "Adresse e-mail"
PostalCode = "Code postal"
FullName = "{Prénom} {Nom}"

[unification]
[[unification.rules]]
fields = ["Email"]

[[segments]]
name = "ain"
filter = "PostalCode eq '01000'"
"#;

fn refresh(dir: &std::path::Path, text: &str) -> RefreshReport {
    let config = dir.join("insights.toml");
    std::fs::write(&config, text).unwrap();
    let ws = parse_workspace_file(&config, text).unwrap();
    let store = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    InsightsEngine::new(ws, store)
        .refresh(&Scope::Full, &mut Quiet)
        .unwrap()
}

#[test]
fn a_semicolon_export_with_spoken_headers_refreshes_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let text = "Contact ID;Prénom;Nom;Adresse e-mail;Code postal\n\
                1;Zoé;Martin;zoe@example.com;01000\n\
                2;Zoé;Martin;zoe@example.com;01000\n\
                3;Luc;Bernard;luc@example.com;75001\n";
    let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!lossy);
    std::fs::write(dir.join("export.csv"), &bytes).unwrap();
    let report = refresh(dir, WORKSPACE);
    assert!(report.succeeded(), "{:?}", report.stages);
    let store = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    let crm = store.meta("Crm").unwrap();
    let columns: Vec<&str> = crm.schema.columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        columns,
        ["ContactID", "Prenom", "Nom", "AdresseEMail", "CodePostal"]
    );
    let conn = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    let customers: Vec<(String, String, String)> = conn
        .prepare("SELECT FullName, Email, PostalCode FROM ent_Customer ORDER BY Email")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        customers,
        [
            (
                "Luc Bernard".into(),
                "luc@example.com".into(),
                "75001".into()
            ),
            (
                "Zoé Martin".into(),
                "zoe@example.com".into(),
                "01000".into()
            ),
        ]
    );
    let members: i64 = conn
        .query_row("SELECT count(*) FROM ent_SegmentMember", [], |r| r.get(0))
        .unwrap();
    assert_eq!(members, 1);

    // The same settings: the file is not read again.
    let source = |r: &RefreshReport| r.stages[0].detail.clone().unwrap_or_default();
    let again = refresh(dir, WORKSPACE);
    assert!(source(&again).starts_with("unchanged since the last import"));
    // Another encoding is another import: read as UTF-8, the file fails.
    let utf8 = refresh(dir, &WORKSPACE.replace("encoding = \"windows-1252\"\n", ""));
    assert!(!utf8.succeeded());
    assert!(
        source(&utf8).contains("not valid UTF-8 (if the file is in another encoding, name it: encoding = \"windows-1252\")"),
        "{}",
        source(&utf8)
    );
    // Another separator is another import: here one that fails, naming why.
    let commas = refresh(dir, &WORKSPACE.replace("delimiter = \";\"\n", ""));
    assert!(!commas.succeeded());
    assert!(
        source(&commas).contains("the header is one column, 'Contact ID;Prénom;Nom;Adresse e-…': if its fields are separated by ';', set delimiter = \";\""),
        "{}",
        source(&commas)
    );
}
