//! The fuzz corpus (`fuzz/corpus/<target>/`) replayed through the same entry
//! points as the cargo-fuzz targets, on every test run and without nightly:
//! the smoke run of the fuzzers, and a regression test for anything they
//! ever found.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{root, tempdir};
use triggerfish::config_file::Config;
use triggerfish_data::odata::{
    canonical_filter, check_orderby, check_select, compile_filter, parse_filter, parse_orderby,
    ColumnType, Schema,
};
use triggerfish_data::store::{
    import, parse_encoding, EntityDb, FileDialect, ImportFormat, ImportSpec, PageLimits,
    PLAIN_DIALECT,
};

/// Every file of one target's corpus; fails when there is none.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

#[test]
fn filter_corpus_parses_compiles_and_prints_without_panicking() {
    let schema = Schema {
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
    };
    let mut compiled = 0;
    for (path, bytes) in corpus("filter") {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Ok(expr) = parse_filter(text) {
            if let Ok((sql, params)) = compile_filter(&expr, &schema) {
                assert_eq!(sql.matches('?').count(), params.len(), "{}", path.display());
                compiled += 1;
            }
            let _ = canonical_filter(&expr);
        }
        if let Ok(keys) = parse_orderby(text) {
            let _ = check_orderby(&keys, &schema);
        }
        let fields: Vec<String> = text.split(',').map(|f| f.trim().to_owned()).collect();
        let _ = check_select(&fields, &schema);
    }
    assert!(compiled > 0, "no filter of the corpus compiled");
}

#[test]
fn config_corpus_loads_or_fails_with_an_error() {
    for (_, bytes) in corpus("config") {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Config::parse(Path::new("/fuzz/triggerfish.toml"), &text);
    }
}

#[test]
fn source_corpora_import_or_fail_with_an_error() {
    let dir = tempdir();
    let store = EntityDb::open(&dir.path().join("store.sqlite"), PageLimits::default()).unwrap();
    for (target, format, ext) in [
        ("source_csv", ImportFormat::Csv, "csv"),
        ("source_ndjson", ImportFormat::Ndjson, "ndjson"),
        ("source_json", ImportFormat::Json, "json"),
    ] {
        let mut imported = 0;
        for (_, bytes) in corpus(target) {
            let file = dir.path().join(format!("data.{ext}"));
            std::fs::write(&file, &bytes).unwrap();
            let files = [file];
            let types = BTreeMap::new();
            let spec = ImportSpec {
                progress: None,
                files: &files,
                format: Some(format),
                dialect: &PLAIN_DIALECT,
                types: &types,
                key: "Id",
                required: &[],
                tolerance: 2,
                opener: None,
                root: None,
                // Hashing as it reads must hold up to hostile input too.
                digests: true,
            };
            if import(&spec, &store, "Fuzz").is_ok() {
                imported += 1;
            }
            // JSON flattened too: nested objects become columns.
            if format != ImportFormat::Csv {
                let nested = FileDialect {
                    flatten: true,
                    ..FileDialect::default()
                };
                let flat = ImportSpec {
                    dialect: &nested,
                    ..spec
                };
                let _ = import(&flat, &store, "Fuzz");
            }
            // Read in other encodings: the bytes fail to decode, or are
            // refused as UTF-8, or import; never a panic.
            for label in ["windows-1252", "shift_jis", "utf-16le"] {
                let other = FileDialect {
                    encoding: Some(parse_encoding(label).unwrap()),
                    ..FileDialect::default()
                };
                let decoded = ImportSpec {
                    dialect: &other,
                    ..spec
                };
                let _ = import(&decoded, &store, "Fuzz");
            }
        }
        assert!(imported > 0, "no {target} file of the corpus imported");
    }
}
