//! Arbitrary UTF-8 as a `$filter` (parsed, compiled against a fixed schema,
//! printed canonically), as an `$orderby` (parsed and checked) and as a
//! comma-separated `$select` (checked). A compiled filter must prepare in
//! SQLite with exactly one bound parameter per value (user text reaches SQL
//! only as parameters), and within the documented bound on parameters.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use triggerfish_data::odata::{
    canonical_filter, check_orderby, check_select, compile_filter, parse_filter, parse_orderby,
    ColumnType, Schema, MAX_QUERY_OPTION_BYTES,
};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema {
        columns: [
            ("Id", ColumnType::String),
            ("Name", ColumnType::String),
            ("Email", ColumnType::String),
            ("Country", ColumnType::String),
            ("Age", ColumnType::Integer),
            ("A", ColumnType::Integer),
            ("Score", ColumnType::Decimal),
            ("Amount", ColumnType::Decimal),
            ("Vip", ColumnType::Boolean),
            ("Joined", ColumnType::DateTime),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect(),
    })
}

/// An in-memory table with the schema's columns, to prepare filters against.
fn connection() -> &'static std::sync::Mutex<rusqlite::Connection> {
    static CONN: OnceLock<std::sync::Mutex<rusqlite::Connection>> = OnceLock::new();
    CONN.get_or_init(|| {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory SQLite");
        let columns: Vec<String> = schema()
            .columns
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect();
        conn.execute_batch(&format!("CREATE TABLE t ({});", columns.join(", ")))
            .expect("create the table");
        std::sync::Mutex::new(conn)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    if let Ok(expr) = parse_filter(text) {
        let _ = expr.fields();
        if let Ok((sql, params)) = compile_filter(&expr, schema) {
            // Every parameter has its placeholder, and SQLite takes the SQL.
            assert_eq!(sql.matches('?').count(), params.len(), "{sql}");
            assert!(params.len() <= MAX_QUERY_OPTION_BYTES / 2);
            let conn = connection().lock().unwrap_or_else(|e| e.into_inner());
            let stmt = conn
                .prepare(&format!("SELECT 1 FROM t WHERE {sql}"))
                .unwrap_or_else(|e| panic!("SQLite rejects the compiled filter: {e}\n{sql}"));
            assert_eq!(stmt.parameter_count(), params.len(), "{sql}");
        }
        let _ = canonical_filter(&expr);
    }
    if let Ok(keys) = parse_orderby(text) {
        let _ = check_orderby(&keys, schema);
    }
    let fields: Vec<String> = text.split(',').map(|f| f.trim().to_owned()).collect();
    let _ = check_select(&fields, schema);
});
