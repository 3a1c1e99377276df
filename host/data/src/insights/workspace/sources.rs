//! A data source's settings validated: name, key, types, map, derived
//! fields, and where its rows come from (files inside the allowed roots, or
//! a PostgreSQL table or query).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{
    interval, lexical, named, parse_interval, pascal_case, valid_env_name, ConnectionFrom,
    PostgresSpec, Relation, SourceConfig, SourceKind, SourceSpec, Validator, WorkspaceError,
    CUSTOMER_ID, DEFAULT_FULL_READ_EVERY, RESERVED_ENTITIES,
};
use crate::odata::ColumnType;
use crate::store::{
    column_name, parse_type, type_name, valid_identifier, FileDialect, ImportFormat,
};

pub(super) fn source(
    v: &Validator,
    base: &Path,
    roots: &[PathBuf],
    i: usize,
    s: SourceConfig,
    earlier: &[SourceSpec],
) -> Result<SourceSpec, WorkspaceError> {
    let key = |k: &str| format!("insights.sources[{i}].{k}");
    let name = named(v, &s.name, &key("name"))?;
    if earlier.iter().any(|o| o.name == name) {
        return Err(v.invalid(s.name.span(), &key("name"), "duplicate source name"));
    }
    let (entity, entity_span) = match &s.entity {
        Some(e) => (e.get_ref().clone(), e.span()),
        None => (pascal_case(&name), s.name.span()),
    };
    if !valid_identifier(&entity) {
        return Err(v.invalid(
            entity_span,
            &key("entity"),
            &format!("'{entity}' is not a valid entity name (letters, digits and '_', not starting with a digit)"),
        ));
    }
    if RESERVED_ENTITIES.contains(&entity.as_str()) {
        return Err(v.invalid(
            entity_span,
            &key("entity"),
            &format!("entity '{entity}' is written by the insights engine; choose another"),
        ));
    }
    if earlier.iter().any(|o| o.entity == entity) {
        return Err(v.invalid(
            entity_span,
            &key("entity"),
            &format!("entity '{entity}' is already used by another source"),
        ));
    }
    let postgres = match &s.kind {
        None => false,
        Some(k) => match k.get_ref().as_str() {
            "file" => false,
            "postgres" => true,
            _ => return Err(v.invalid(k.span(), &key("kind"), "expected file or postgres")),
        },
    };
    let origin = if postgres {
        postgres_origin(v, base, &s, &key)?
    } else {
        files_origin(v, base, roots, &s, &key)?
    };
    // A file's column as its header writes it, or as the column is named
    // (`column_name`); a table's column as it is.
    let files = matches!(origin.kind, SourceKind::Files);
    let column_named = |c: &str| match files {
        true => column_name(c).map(|n| n.into_owned()),
        false => valid_identifier(c).then(|| c.to_owned()),
    };
    let column = |c: &Spanned<String>, k: &str| -> Result<String, WorkspaceError> {
        column_named(c.get_ref()).ok_or_else(|| {
            v.invalid(
                c.span(),
                &key(k),
                &format!("'{}' is not a column name", c.get_ref()),
            )
        })
    };
    let Some(raw_key) = &s.key else {
        return Err(v.invalid(
            s.name.span(),
            &key("key"),
            "missing field `key` (the primary-key column)",
        ));
    };
    let source_key = column(raw_key, "key")?;
    let mut types = BTreeMap::new();
    for (col, t) in &s.types {
        let k = key(&format!("types.{col}"));
        let ty = parse_type(t.get_ref()).ok_or_else(|| {
            v.invalid(
                t.span(),
                &k,
                "expected string, integer, decimal, boolean or datetime",
            )
        })?;
        let named = column_named(col)
            .ok_or_else(|| v.invalid(t.span(), &k, &format!("'{col}' is not a column name")))?;
        if types.insert(named.clone(), ty).is_some() {
            return Err(v.invalid(
                t.span(),
                &k,
                &format!("the column '{named}' is given a type twice"),
            ));
        }
    }
    let updated_at = s
        .updated_at
        .as_ref()
        .map(|u| column(u, "updated_at"))
        .transpose()?;
    // Most-recent merges order a file's records by this column's text,
    // which only dates stored as dates keep in time order ("28/12/2025"
    // sorts after "10/01/2026"): the column is typed datetime.
    if let (Some(u), Some(raw), true) = (&updated_at, &s.updated_at, files) {
        match types.get(u) {
            None => {
                types.insert(u.clone(), ColumnType::DateTime);
            }
            Some(ColumnType::DateTime) => {}
            Some(other) => {
                return Err(v.invalid(
                    raw.span(),
                    &key("updated_at"),
                    &format!(
                        "'{u}' is typed {}: updated_at orders records by time, so its column is a datetime",
                        type_name(*other)
                    ),
                ))
            }
        }
    }
    let mut map = Vec::new();
    let mut derived = Vec::new();
    for (field, col) in &s.map {
        let k = format!("map.{field}");
        if !valid_identifier(field) || field == CUSTOMER_ID {
            return Err(v.invalid(
                col.span(),
                &key(&k),
                &format!(
                    "'{field}' cannot be a profile field (an identifier other than CustomerId)"
                ),
            ));
        }
        if crate::insights::template::is_template(col.get_ref()) {
            let t = crate::insights::template::Template::parse(col.get_ref())
                .map_err(|e| v.invalid(col.span(), &key(&k), &format!("bad template: {e}")))?;
            derived.push((field.clone(), t));
        } else {
            map.push((field.clone(), column(col, &k)?));
        }
    }
    Ok(SourceSpec {
        name,
        entity,
        kind: origin.kind,
        format: origin.format,
        dialect: origin.dialect,
        path: origin.path,
        is_glob: origin.is_glob,
        root: origin.root,
        key: source_key,
        types,
        tolerance: s.tolerance.unwrap_or(0),
        schedule: interval(v, s.schedule.as_ref(), &key("schedule"))?,
        updated_at,
        map,
        derived,
    })
}

/// Where a source's rows come from, validated.
struct Origin {
    kind: SourceKind,
    format: Option<ImportFormat>,
    dialect: FileDialect,
    path: PathBuf,
    root: PathBuf,
    is_glob: bool,
}

/// A file source: `path` (inside a root) and `format`; no postgres keys.
fn files_origin(
    v: &Validator,
    base: &Path,
    roots: &[PathBuf],
    s: &SourceConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<Origin, WorkspaceError> {
    for (k, given) in [
        ("connection_env", &s.connection_env),
        ("connection_file", &s.connection_file),
        ("table", &s.table),
        ("query", &s.query),
        ("ssl_root_cert", &s.ssl_root_cert),
        ("ssl_cert", &s.ssl_cert),
        ("ssl_key", &s.ssl_key),
        ("full_read_every", &s.full_read_every),
        ("deleted", &s.deleted),
    ] {
        if let Some(given) = given {
            return Err(v.invalid(
                given.span(),
                &key(k),
                &format!("`{k}` is for a postgres source: add kind = \"postgres\""),
            ));
        }
    }
    let Some(raw) = &s.path else {
        return Err(v.invalid(
            s.name.span(),
            &key("path"),
            "missing field `path` (a file or glob; or kind = \"postgres\" with `table` or `query`)",
        ));
    };
    let format = s
        .format
        .as_ref()
        .map(|f| {
            ImportFormat::parse(f.get_ref()).ok_or_else(|| {
                v.invalid(
                    f.span(),
                    &key("format"),
                    "expected csv, tsv, json or ndjson",
                )
            })
        })
        .transpose()?;
    let raw_path = raw.get_ref();
    if raw_path.trim().is_empty() {
        return Err(v.invalid(raw.span(), &key("path"), "expected a file path or glob"));
    }
    let is_glob = raw_path.contains(['*', '?', '[']);
    let path = lexical(&base.join(raw_path));
    // The folder part before any glob character must lie in a root.
    let fixed: PathBuf = path
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let Some(root) = roots.iter().find(|r| fixed.starts_with(r)).cloned() else {
        return Err(v.invalid(
            raw.span(),
            &key("path"),
            &format!(
                "'{raw_path}' is outside the workspace folder {}: add its folder to [insights] roots",
                base.display()
            ),
        ));
    };
    if is_glob {
        glob::Pattern::new(&path.to_string_lossy())
            .map_err(|e| v.invalid(raw.span(), &key("path"), &format!("bad glob: {e}")))?;
    }
    let Some(read_as) = format.or_else(|| ImportFormat::from_path(Path::new(raw_path))) else {
        return Err(v.invalid(
            raw.span(),
            &key("format"),
            "the path does not end in .csv, .tsv, .json or .ndjson (or one of them and .gz): set format",
        ));
    };
    let dialect = super::dialect::file_dialect(v, s, read_as, key)?;
    Ok(Origin {
        kind: SourceKind::Files,
        format,
        dialect,
        path,
        root,
        is_glob,
    })
}

/// A postgres source: `connection_env` or `connection_file`, and one of
/// `table` or `query`; no `path` or `format`. The connection string is
/// never read here nor quoted in an error (it holds a password).
fn postgres_origin(
    v: &Validator,
    base: &Path,
    s: &SourceConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<Origin, WorkspaceError> {
    fn span<T>(given: &Option<toml::Spanned<T>>) -> Option<std::ops::Range<usize>> {
        given.as_ref().map(toml::Spanned::span)
    }
    for (k, given, why) in [
        (
            "path",
            span(&s.path),
            "a postgres source reads `table` or `query`, not a path",
        ),
        (
            "format",
            span(&s.format),
            "`format` is for files: a postgres source's columns are typed by PostgreSQL",
        ),
        (
            "delimiter",
            span(&s.delimiter),
            "`delimiter` is for CSV files",
        ),
        (
            "encoding",
            span(&s.encoding),
            "`encoding` is for files: PostgreSQL sends UTF-8",
        ),
        (
            "datetime_format",
            span(&s.datetime_format),
            "`datetime_format` is for files: PostgreSQL types its dates",
        ),
        (
            "decimal_separator",
            span(&s.decimal_separator),
            "`decimal_separator` is for files: PostgreSQL types its numbers",
        ),
        (
            "thousands_separator",
            span(&s.thousands_separator),
            "`thousands_separator` is for files: PostgreSQL types its numbers",
        ),
    ] {
        if let Some(given) = given {
            return Err(v.invalid(given, &key(k), why));
        }
    }
    if let Some(f) = &s.flatten {
        return Err(v.invalid(
            f.span(),
            &key("flatten"),
            "`flatten` is for JSON files: a table's columns do not nest",
        ));
    }
    let connection = match (&s.connection_env, &s.connection_file) {
        (Some(_), Some(file)) => {
            return Err(v.invalid(
                file.span(),
                &key("connection_file"),
                "give `connection_env` or `connection_file`, not both",
            ))
        }
        (None, None) => {
            return Err(v.invalid(
                s.name.span(),
                &key("connection_env"),
                "missing field `connection_env` (the name of the environment variable holding the connection string; or `connection_file`, a file holding it)",
            ))
        }
        (Some(env), None) => {
            if !valid_env_name(env.get_ref()) {
                // Not quoted: it may be the connection string itself.
                return Err(v.invalid(
                    env.span(),
                    &key("connection_env"),
                    "expected the name of an environment variable (letters, digits and '_'), not the connection string itself",
                ));
            }
            ConnectionFrom::Env(env.get_ref().clone())
        }
        (None, Some(file)) => {
            if file.get_ref().contains("://") || file.get_ref().contains('=') {
                // Not quoted: it may be the connection string itself.
                return Err(v.invalid(
                    file.span(),
                    &key("connection_file"),
                    "expected the path of a file holding the connection string, not the connection string itself",
                ));
            }
            ConnectionFrom::File(lexical(&base.join(file.get_ref())))
        }
    };
    let relation = match (&s.table, &s.query) {
        (Some(_), Some(q)) => {
            return Err(v.invalid(q.span(), &key("query"), "give `table` or `query`, not both"))
        }
        (None, None) => {
            return Err(v.invalid(
                s.name.span(),
                &key("table"),
                "a postgres source needs `table` or `query`",
            ))
        }
        (Some(t), None) => {
            let parts: Vec<&str> = t.get_ref().split('.').collect();
            if parts.len() > 2 || !parts.iter().all(|p| valid_identifier(p)) {
                return Err(v.invalid(
                    t.span(),
                    &key("table"),
                    "expected a table name such as \"contacts\" or \"public.contacts\" (letters, digits and '_'; use `query` for others)",
                ));
            }
            match parts[..] {
                [schema, name] => Relation::Table {
                    schema: Some(schema.to_owned()),
                    name: name.to_owned(),
                },
                _ => Relation::Table {
                    schema: None,
                    name: parts[0].to_owned(),
                },
            }
        }
        (None, Some(q)) => {
            let text = q
                .get_ref()
                .trim()
                .trim_end_matches([';', ' ', '\t', '\r', '\n']);
            if text.is_empty() {
                return Err(v.invalid(q.span(), &key("query"), "expected a SELECT"));
            }
            Relation::Query(text.to_owned())
        }
    };
    // A PEM file the source names, which must exist.
    let pem_file = |name: &str, given: &Option<Spanned<String>>, holds: &str| match given {
        None => Ok(None),
        Some(raw) => {
            let path = lexical(&base.join(raw.get_ref()));
            match path.is_file() {
                true => Ok(Some(path)),
                false => Err(v.invalid(
                    raw.span(),
                    &key(name),
                    &format!("no file {}: expected a PEM file of {holds}", path.display()),
                )),
            }
        }
    };
    let ssl_root_cert = pem_file(
        "ssl_root_cert",
        &s.ssl_root_cert,
        "the certificate authorities to verify the server with",
    )?;
    let cert = pem_file("ssl_cert", &s.ssl_cert, "the certificate to log in with")?;
    let cert_key = pem_file("ssl_key", &s.ssl_key, "the private key of ssl_cert")?;
    let client_cert = match (cert, cert_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(v.invalid(
                s.name.span(),
                &key("ssl_key"),
                "ssl_cert needs ssl_key, the file of its private key",
            ))
        }
        (None, Some(_)) => {
            return Err(v.invalid(
                s.name.span(),
                &key("ssl_cert"),
                "ssl_key needs ssl_cert, the certificate it is the key of",
            ))
        }
    };
    let full_read_every = match &s.full_read_every {
        Some(every) if every.get_ref().trim() == "never" => None,
        Some(every) => Some(parse_interval(every.get_ref()).ok_or_else(|| {
            v.invalid(
                every.span(),
                &key("full_read_every"),
                "expected an interval such as \"12h\" or \"7d\", or \"never\"",
            )
        })?),
        None => Some(DEFAULT_FULL_READ_EVERY),
    };
    let deleted = match &s.deleted {
        Some(column) if !valid_identifier(column.get_ref()) => return Err(v.invalid(
            column.span(),
            &key("deleted"),
            "expected the name of a column (letters, digits and '_', not starting with a digit)",
        )),
        Some(column) => {
            let same = |other: &Option<Spanned<String>>| {
                other
                    .as_ref()
                    .is_some_and(|o| o.get_ref() == column.get_ref())
            };
            if same(&s.key) || same(&s.updated_at) {
                return Err(v.invalid(
                    column.span(),
                    &key("deleted"),
                    "expected a column of its own: the key and `updated_at` are set on every row, which would mark every row deleted",
                ));
            }
            Some(column.get_ref().clone())
        }
        None => None,
    };
    Ok(Origin {
        kind: SourceKind::Postgres(PostgresSpec {
            connection,
            relation,
            ssl_root_cert,
            client_cert,
            full_read_every,
            deleted,
        }),
        format: None,
        dialect: FileDialect::default(),
        path: PathBuf::new(),
        root: lexical(base),
        is_glob: false,
    })
}
