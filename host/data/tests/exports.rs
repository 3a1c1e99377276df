//! Files as CRM and spreadsheet exports write them: fields separated by
//! `;`, headers with spaces and accents, in Windows' Western encoding,
//! dates day first, decimals with a comma and thousands grouped by points. A refresh loads them as written, the configuration
//! naming columns as the headers do; changing the separator or the encoding
//! imports again.

use triggerfish_data::event::Event;
use triggerfish_data::insights::workspace::parse_workspace_file;
use triggerfish_data::insights::{InsightsEngine, Observer, RefreshReport, Scope};
use triggerfish_data::odata::ColumnType;
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
updated_at = "Modifié le"
datetime_format = "%d/%m/%Y %H:%M"
decimal_separator = ","
thousands_separator = "."
types = { "Code postal" = "string" }
[sources.map]
Email = "Adresse e-mail"
PostalCode = "Code postal"
FullName = "{Prénom} {Nom}"
City = "Ville"

[unification]
[[unification.rules]]
fields = ["Email"]
[unification.merge]
City = "most-recent"

[[measures]]
name = "spent"
aggregate = "sum"
entity = "Crm"
field = "Depense"

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
    // Zoé moved to Paris in January: by their text, December's record
    // ("28/12/…") would sort after January's ("10/01/…").
    let text = "Contact ID;Prénom;Nom;Adresse e-mail;Code postal;Ville;Modifié le;Dépense\n\
                1;Zoé;Martin;zoe@example.com;01000;Lyon;28/12/2025 10:00;12,50\n\
                2;Zoé;Martin;zoe@example.com;01000;Paris;10/01/2026 09:30;7,5\n\
                3;Luc;Bernard;luc@example.com;75001;Paris;02/01/2026 17:45;1.100,00\n";
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
        [
            "ContactID",
            "Prenom",
            "Nom",
            "AdresseEMail",
            "CodePostal",
            "Ville",
            "ModifieLe",
            "Depense"
        ]
    );
    assert_eq!(crm.schema.columns[6].1, ColumnType::DateTime);
    assert_eq!(crm.schema.columns[7].1, ColumnType::Decimal, "inferred");
    // Through the store: imported entities are kept in files of their own.
    let db = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    let conn = db.session();
    let customers: Vec<[String; 4]> = conn
        .prepare("SELECT FullName, Email, PostalCode, City FROM ent_Customer ORDER BY Email")
        .unwrap()
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let row = |v: [&str; 4]| v.map(str::to_owned);
    assert_eq!(
        customers,
        [
            row(["Luc Bernard", "luc@example.com", "75001", "Paris"]),
            row(["Zoé Martin", "zoe@example.com", "01000", "Paris"]),
        ]
    );
    let spent: f64 = conn
        .query_row(
            "SELECT Value FROM ent_Measure WHERE Name = 'spent'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(spent, 1120.0);
    let stored: String = conn
        .query_row(
            "SELECT ModifieLe FROM ent_Crm WHERE ContactID = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "2026-01-10T09:30:00Z");
    let members: i64 = conn
        .query_row("SELECT count(*) FROM ent_SegmentMember", [], |r| r.get(0))
        .unwrap();
    assert_eq!(members, 1);

    // The same settings: the file is not read again.
    let source = |r: &RefreshReport| r.stages[0].detail.clone().unwrap_or_default();
    let again = refresh(dir, WORKSPACE);
    assert!(source(&again).starts_with("unchanged since the last import"));
    // Without its format, a day-first date is refused, named.
    let iso = refresh(
        dir,
        &WORKSPACE.replace("datetime_format = \"%d/%m/%Y %H:%M\"\n", ""),
    );
    assert!(!iso.succeeded());
    assert!(
        source(&iso).contains("export.csv: row 1, field 'ModifieLe': '28/12/2025 10:00' is not a date or date-time (expected e.g. 2024-03-01 or 2024-03-01T09:30:00Z; set datetime_format for others)"),
        "{}",
        source(&iso)
    );
    // Without its grouping, "1.100,00" is no number: the column is text,
    // and the measure says so.
    let text = refresh(dir, &WORKSPACE.replace("thousands_separator = \".\"\n", ""));
    let measures = text.stages.iter().find(|s| s.name == "measures").unwrap();
    assert!(
        measures
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("measure 'spent': sum needs a numeric field, but 'Depense' is a string (if a file writes its numbers as 1.234,50 or 1,234.50, set its source's decimal_separator and thousands_separator)"),
        "{:?}",
        text.stages
    );
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

/// An API export nests each contact's fields (`properties.email`); with
/// `flatten`, the map names them by their path.
#[test]
fn nested_api_exports_map_their_fields_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("contacts.ndjson"),
        r#"{"id": "101", "properties": {"email": "zoe@example.com", "firstname": "Zoé"}}
{"id": "102", "properties": {"email": "ZOE@example.com ", "firstname": "Zoe"}, "archived": false}
{"id": "103", "properties": {"email": "luc@example.com", "firstname": "Luc"}}
"#,
    )
    .unwrap();
    let workspace = r#"
[[sources]]
name = "hubspot"
path = "contacts.ndjson"
flatten = true
key = "id"
[sources.map]
Email = "properties.email"
FirstName = "properties.firstname"

[unification]
[[unification.rules]]
fields = ["Email"]
"#;
    let report = refresh(dir, workspace);
    assert!(report.succeeded(), "{:?}", report.stages);
    // Through the store: imported entities are kept in files of their own.
    let db = EntityDb::open(&dir.join("store.sqlite"), Default::default()).unwrap();
    let conn = db.session();
    let customers: i64 = conn
        .query_row("SELECT count(*) FROM ent_Customer", [], |r| r.get(0))
        .unwrap();
    assert_eq!(customers, 2);
    // Without it, the nested fields are not columns: named as such.
    let flat = refresh(dir, &workspace.replace("flatten = true\n", ""));
    assert!(!flat.succeeded());
    let detail = flat.stages[0].detail.clone().unwrap_or_default();
    assert!(
        detail.contains("column 'PropertiesEmail' is used by the configuration but is not in the data (fields: id, properties, archived); if it is a field of 'properties', set flatten = true"),
        "{detail}"
    );
}
