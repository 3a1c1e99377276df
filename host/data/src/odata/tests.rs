//! Table tests: filter text → matching rows, and malformed text → position.

use rusqlite::Connection;

use super::*;

fn schema() -> Schema {
    Schema {
        columns: vec![
            ("Id".into(), ColumnType::Integer),
            ("Name".into(), ColumnType::String),
            ("Age".into(), ColumnType::Integer),
            ("Score".into(), ColumnType::Decimal),
            ("Vip".into(), ColumnType::Boolean),
            ("Joined".into(), ColumnType::DateTime),
        ],
    }
}

fn db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(
        "CREATE TABLE t (Id INTEGER PRIMARY KEY, Name TEXT, Age INTEGER, Score REAL, Vip INTEGER, Joined TEXT);
         INSERT INTO t VALUES
           (1, 'Ann',      34,   1.5, 1, '2024-03-01T00:00:00Z'),
           (2, 'Bob',      NULL, 2.0, 0, '2024-03-02T10:00:00Z'),
           (3, 'O''Brien', 51,   NULL, 1, NULL),
           (4, '50%_off',  18,   0.25, NULL, '2023-12-31T23:59:59Z'),
           (5, NULL,       27,   9.75, 0, '2024-01-15T08:30:00Z'),
           (6, 'annabel',  34,   -3.0, 1, '2024-03-01T09:30:00Z');",
    )
    .unwrap();
    c
}

fn run(filter: &str) -> Result<Vec<i64>, QueryOptionError> {
    let expr = parse_filter(filter)?;
    let (sql, params) = compile_filter(&expr, &schema())?;
    let c = db();
    let mut stmt = c
        .prepare(&format!("SELECT Id FROM t WHERE {sql} ORDER BY Id"))
        .unwrap();
    let ids = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap();
    Ok(ids)
}

#[test]
fn filters_select_the_expected_rows() {
    let table: &[(&str, &[i64])] = &[
        ("Age eq 34", &[1, 6]),
        ("Age ne 34", &[2, 3, 4, 5]),
        ("Age gt 34", &[3]),
        ("Age ge 34", &[1, 3, 6]),
        ("Age lt 27", &[4]),
        ("Age le 27", &[4, 5]),
        ("Age eq null", &[2]),
        ("Age ne null", &[1, 3, 4, 5, 6]),
        ("Name eq 'O''Brien'", &[3]),
        ("Name eq '50%_off'", &[4]),
        ("Score gt 1", &[1, 2, 5]),
        ("Score lt -1.5", &[6]),
        ("Score eq 2", &[2]),
        ("Vip eq true", &[1, 3, 6]),
        ("Vip eq false", &[2, 5]),
        ("Vip ne true", &[2, 4, 5]),
        ("Joined ge 2024-03-01", &[1, 2, 6]),
        ("Joined lt 2024-03-01T10:30:00+01:00", &[1, 4, 5]),
        ("Joined le 2024-03-01T10:30:00+01:00", &[1, 4, 5, 6]),
        ("Joined eq 2024-03-02T10:00:00Z", &[2]),
        ("Joined gt '2024-01-01'", &[1, 2, 5, 6]),
        ("Age in (18, 51)", &[3, 4]),
        ("Name in ('Ann', 'Bob', null)", &[1, 2, 5]),
        ("contains(Name, 'nn')", &[1, 6]),
        ("contains(Name, '%')", &[4]),
        ("contains(Name, '_')", &[4]),
        ("startswith(Name, 'An')", &[1]),
        ("startswith(Name, 'an')", &[6]),
        ("endswith(Name, 'bel')", &[6]),
        ("endswith(Name, '')", &[1, 2, 3, 4, 6]),
        ("endswith(Name, 'xAnn')", &[]),
        ("Age eq 34 or Age eq 18 and Vip eq true", &[1, 6]),
        ("(Age eq 34 or Age eq 18) and Vip eq true", &[1, 6]),
        ("(Age eq 34 or Age eq 51) and Vip eq true", &[1, 3, 6]),
        ("not Age gt 30", &[2, 4, 5]),
        ("not (Age gt 30 or Vip eq false)", &[4]),
        ("not contains(Name, 'n')", &[2, 4, 5]),
        ("not not Age eq 34", &[1, 6]),
        ("Age eq 34 and Name eq 'Ann' or Id eq 5", &[1, 5]),
        ("  Id   eq   3  ", &[3]),
    ];
    for (filter, expected) in table {
        let got = run(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(&got, expected, "filter: {filter}");
    }
}

#[test]
fn malformed_filters_report_position_and_expectation() {
    let table: &[(&str, u32, &str)] = &[
        ("", 0, "expected an expression but found end of input"),
        ("Age", 3, "expected a comparison operator (eq, ne, gt, ge, lt, le, in) after field 'Age' but found end of input"),
        ("Age equals 3", 4, "expected a comparison operator (eq, ne, gt, ge, lt, le, in) after field 'Age' but found 'equals'"),
        ("Agee eq 3", 0, "unknown field 'Agee'"),
        ("Age eq 3 and Nmae eq 'x'", 13, "unknown field 'Nmae'"),
        ("Name eq 'Ann", 8, "unterminated string literal"),
        ("(Age eq 3", 9, "expected ')' but found end of input"),
        ("Age eq 3)", 8, "expected 'and', 'or' or the end but found ')'"),
        ("Age eq 3 xyz", 9, "expected 'and', 'or' or the end but found 'xyz'"),
        ("Age eq", 6, "expected a value but found end of input"),
        ("Age eq 'x'", 7, "field 'Age' is an integer: expected a whole number but found 'x'"),
        ("Name eq 3", 8, "field 'Name' is a string: expected a quoted string such as 'text' but found 3"),
        ("Vip eq 1", 7, "field 'Vip' is a boolean: expected true or false but found 1"),
        ("Joined gt 'soon'", 10, "field 'Joined' is a date-time: expected a date-time such as 2024-03-01T09:30:00Z but found 'soon'"),
        ("Joined gt 2024-13-01", 10, "'2024-13-01' is not a date-time (expected e.g. 2024-03-01 or 2024-03-01T09:30:00Z)"),
        ("Age gt null", 7, "null can only be compared with eq or ne"),
        ("Age in 3", 7, "expected '(' after 'in' but found '3'"),
        ("Age in (3 4)", 10, "expected ',' or ')' but found '4'"),
        ("contains(Age, '3')", 9, "field 'Age' is an integer: string functions need a string field"),
        ("contains(Name 'x')", 14, "expected ',' but found ''x''"),
        ("Age eq 3 and", 12, "expected a field name but found end of input"),
        ("eq 3", 0, "expected a field name but found 'eq'"),
        ("Age # 3", 4, "unexpected character '#'"),
        ("Name eq 'é' and Agé eq 1", 18, "unexpected character 'é'"),
    ];
    for (filter, pos, message) in table {
        let e = run(filter).unwrap_err();
        assert_eq!(
            (e.position, e.message.as_str()),
            (*pos, *message),
            "filter: {filter}"
        );
        assert_eq!(e.option, "$filter");
    }
}

#[test]
fn canonical_text_ignores_spacing() {
    let a = parse_filter("Age  eq 3 and (Name eq 'x')").unwrap();
    let b = parse_filter("(Age eq 3) and Name eq 'x'").unwrap();
    assert_eq!(canonical_filter(&a), canonical_filter(&b));
    assert_eq!(canonical_filter(&a), "((Age eq 3) and (Name eq 'x'))");
}

#[test]
fn orderby_and_select() {
    let keys = parse_orderby("Age desc, Name").unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].descending && !keys[1].descending);
    check_orderby(&keys, &schema()).unwrap();
    let e = parse_orderby("Age desc Name").unwrap_err();
    assert_eq!(
        (e.position, e.message.as_str()),
        (9, "expected 'asc', 'desc', ',' or the end but found 'Name'")
    );
    let e = check_orderby(&parse_orderby("Age, Nmae asc").unwrap(), &schema()).unwrap_err();
    assert_eq!(
        (e.option, e.position, e.message.as_str()),
        ("$orderby", 5, "unknown field 'Nmae'")
    );
    let e = parse_orderby("Age, Age").unwrap_err();
    assert_eq!(e.message, "field 'Age' appears twice");
    let e = check_select(&["Id".into(), "Nme".into()], &schema()).unwrap_err();
    assert_eq!(
        (e.option, e.position, e.message.as_str()),
        ("$select", 3, "unknown field 'Nme'")
    );
}

/// Runs `f` on a thread with a 256 KiB stack: any recursion as deep as the
/// input would overflow it and abort the test binary.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// An entity with `F0` … `F299`, wider than any `$select` or `$orderby` allows.
fn wide_schema() -> Schema {
    Schema {
        columns: (0..300)
            .map(|i| (format!("F{i}"), ColumnType::Integer))
            .collect(),
    }
}

/// `F0,F1,…` with `n` fields.
fn wide_fields(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("F{i}")).collect()
}

/// The error for `$filter` text, from parsing, compiling or running it.
fn filter_error(text: String) -> String {
    run(&text).unwrap_err().to_string()
}

#[test]
fn inputs_past_the_limits_fail_quickly_with_the_limit_named() {
    type Case = (&'static str, fn() -> String, &'static str);
    let cases: Vec<Case> = vec![
        // Too long to look at: refused before lexing.
        (
            "100,000 nested parentheses",
            || {
                filter_error(format!(
                    "{}Id eq 1{}",
                    "(".repeat(100_000),
                    ")".repeat(100_000)
                ))
            },
            "$filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "100,000 nots",
            || filter_error(format!("{}Id eq 1", "not ".repeat(100_000))),
            "$filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "20,000 or terms",
            || filter_error(vec!["Id eq 1"; 20_000].join(" or ")),
            "$filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "an in list of 100,000 values",
            || filter_error(format!("Id in ({})", vec!["1"; 100_000].join(","))),
            "$filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "a 1 MiB string literal",
            || filter_error(format!("Name eq '{}'", "x".repeat(1 << 20))),
            "$filter at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "a 1 MiB filter of multi-byte characters",
            || filter_error(format!("Name eq '{}'", "é".repeat(1 << 19))),
            // 9 bytes before the literal, then 2 bytes a character.
            "$filter at 8196: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "10,000 orderby keys",
            || {
                parse_orderby(&wide_fields(10_000).join(","))
                    .unwrap_err()
                    .to_string()
            },
            "$orderby at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        (
            "10,000 select fields",
            || {
                check_select(&wide_fields(10_000), &wide_schema())
                    .unwrap_err()
                    .to_string()
            },
            "$select at 1170: more than 256 fields (MAX_SELECT_FIELDS)",
        ),
        (
            "a 1 MiB select field",
            || {
                check_select(&["F1".into(), "x".repeat(1 << 20)], &wide_schema())
                    .unwrap_err()
                    .to_string()
            },
            "$select at 16384: longer than 16384 bytes (MAX_QUERY_OPTION_BYTES)",
        ),
        // Short enough to lex: refused by the parser at the first token past
        // the limit.
        (
            "8,000 nested parentheses",
            || filter_error(format!("{}Id eq 1{}", "(".repeat(8_000), ")".repeat(4_000))),
            "$filter at 32: nesting deeper than 32 levels (MAX_FILTER_DEPTH)",
        ),
        (
            "4,000 nots",
            || filter_error(format!("{}Id eq 1", "not ".repeat(4_000))),
            "$filter at 128: nesting deeper than 32 levels (MAX_FILTER_DEPTH)",
        ),
        (
            "3,000 'not ('",
            || filter_error(format!("{}Id eq 1", "not (".repeat(3_000))),
            "$filter at 80: nesting deeper than 32 levels (MAX_FILTER_DEPTH)",
        ),
        (
            "1,400 or terms",
            || filter_error(vec!["Id eq 1"; 1_400].join(" or ")),
            "$filter at 2816: more than 256 comparisons and function calls (MAX_FILTER_TERMS)",
        ),
        (
            "257 terms of every kind",
            || {
                let terms = ["Id eq 1", "Id in (1, 2)", "contains(Name, 'a')"];
                let text: Vec<&str> = terms.iter().copied().cycle().take(257).collect();
                filter_error(text.join(" and "))
            },
            "$filter at 4517: more than 256 comparisons and function calls (MAX_FILTER_TERMS)",
        ),
        (
            "an in list of 5,000 values",
            || filter_error(format!("Id in ({})", vec!["1"; 5_000].join(","))),
            "$filter at 2007: more than 1000 values in one 'in' list (MAX_IN_VALUES)",
        ),
        (
            "2,000 orderby keys",
            || {
                parse_orderby(&wide_fields(2_000).join(","))
                    .unwrap_err()
                    .to_string()
            },
            "$orderby at 54: more than 16 keys (MAX_ORDERBY_KEYS)",
        ),
        (
            "17 orderby keys, however they were made",
            || {
                let keys: Vec<OrderKey> = (0..17)
                    .map(|i| OrderKey {
                        field: format!("F{i}"),
                        descending: false,
                        position: i * 10,
                    })
                    .collect();
                check_orderby(&keys, &wide_schema())
                    .unwrap_err()
                    .to_string()
            },
            "$orderby at 160: more than 16 keys (MAX_ORDERBY_KEYS)",
        ),
    ];
    for (name, case, expected) in cases {
        let got = on_small_stack(case);
        assert_eq!(got, expected, "{name}");
    }
}

/// Rows of `t` matching compiled SQL.
fn rows(sql: &str, params: &[rusqlite::types::Value]) -> Vec<i64> {
    let c = db();
    let mut stmt = c
        .prepare(&format!("SELECT Id FROM t WHERE {sql} ORDER BY Id"))
        .unwrap();
    let ids = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| r.get(0))
        .unwrap()
        .collect::<Result<Vec<i64>, _>>()
        .unwrap();
    ids
}

#[test]
fn queries_just_under_the_limits_parse_compile_and_run() {
    let deepest_tree = format!(
        "{}({})",
        "not ".repeat(31),
        vec!["Name ne 'x'"; 256].join(" and ")
    );
    let most_values = format!(
        "Id in ({})",
        (1..=1_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let filters: Vec<(String, Vec<i64>)> = vec![
        (
            format!("{}Id eq 1{}", "(".repeat(32), ")".repeat(32)),
            vec![1],
        ),
        (format!("{}Id eq 1", "not ".repeat(32)), vec![1]),
        (
            format!("{}Id eq 1", "not (".repeat(16)) + &")".repeat(16),
            vec![1],
        ),
        // Parentheses of `in` and function calls are not nesting.
        (
            format!(
                "{}contains(Name, 'nn') and Age in (34){}",
                "(".repeat(32),
                ")".repeat(32)
            ),
            vec![1, 6],
        ),
        (vec!["Id eq 1"; 256].join(" or "), vec![1]),
        // The deepest tree: 31 nots, then one more level of parentheses
        // around 255 `and`s, 287 levels.
        (deepest_tree.clone(), vec![]),
        (most_values, vec![1, 2, 3, 4, 5, 6]),
        (
            format!("Name eq '{}'", "x".repeat(MAX_QUERY_OPTION_BYTES - 10)),
            vec![],
        ),
    ];
    let texts: Vec<String> = filters.iter().map(|(f, _)| f.clone()).collect();
    // Everything of ours, on a small stack: parse, compile, print, list the
    // fields and drop.
    let compiled = on_small_stack(move || {
        let mut out = Vec::new();
        for text in texts {
            assert!(text.len() <= MAX_QUERY_OPTION_BYTES);
            let expr = parse_filter(&text).unwrap_or_else(|e| panic!("{e}"));
            assert!(canonical_filter(&expr).ends_with(')'));
            assert!(!expr.fields().is_empty());
            out.push(compile_filter(&expr, &schema()).unwrap());
        }
        let expr = parse_filter(&deepest_tree).unwrap();
        assert_eq!(expr.fields().len(), 256);
        assert!(canonical_filter(&expr).starts_with(&"(not ".repeat(31)));
        let keys = parse_orderby(&wide_fields(16).join(", ")).unwrap();
        assert_eq!(keys.len(), MAX_ORDERBY_KEYS);
        check_orderby(&keys, &wide_schema()).unwrap();
        check_select(&wide_fields(256), &wide_schema()).unwrap();
        out
    });
    // SQLite accepts the SQL (its expression depth and parameter limits),
    // on the test thread's usual stack: its own recursion is its business.
    for ((text, expected), (sql, params)) in filters.iter().zip(compiled) {
        assert_eq!(&rows(&sql, &params), expected, "{text}");
    }
}

#[test]
fn limits_are_the_documented_values() {
    assert_eq!(MAX_QUERY_OPTION_BYTES, 16_384);
    assert_eq!(MAX_FILTER_DEPTH, 32);
    assert_eq!(MAX_FILTER_TERMS, 256);
    assert_eq!(MAX_IN_VALUES, 1_000);
    assert_eq!(MAX_ORDERBY_KEYS, 16);
    assert_eq!(MAX_SELECT_FIELDS, 256);
}

#[test]
fn the_fast_datetime_forms_agree_with_the_general_parser() {
    let mut cases: Vec<String> = vec![
        "2024-02-29".into(),
        "2023-02-29".into(),
        "2024-13-01".into(),
        "2024-00-10".into(),
        "2024-04-31".into(),
        "0000-01-01".into(),
        "9999-12-31T23:59:59Z".into(),
        "2024-06-30T23:59:60Z".into(),
        "2024-03-01T24:00:00Z".into(),
        "2024-03-01T09:60:00Z".into(),
        "2024-03-01t09:30:00z".into(),
        "2024-03-01T09:30:00+02:00".into(),
        "2024-03-01 09:30:00".into(),
        "2024-3-01".into(),
        "20a4-03-01".into(),
        "+2024-03-01".into(),
        "-0001-03-01".into(),
        "12345".into(),
        "2024".into(),
        "2024-".into(),
        "20240-01-01".into(),
        "+33 7 43 97 79 89".into(),
        "+33734101449".into(),
        "0700027431".into(),
        "-".into(),
        "Ruby".into(),
        "".into(),
    ];
    // Every day and a spread of times over four years, and digits out of range.
    for year in [1900, 2000, 2023, 2024] {
        for month in 0..=13 {
            for day in 0..=32 {
                cases.push(format!("{year:04}-{month:02}-{day:02}"));
                let (h, m, s) = ((day * 7) % 26, (day * 13) % 62, (month * 17 + day) % 62);
                cases.push(format!(
                    "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"
                ));
            }
        }
    }
    for case in &cases {
        assert_eq!(
            super::normalize_datetime(case),
            super::parse_datetime(case),
            "{case}"
        );
        // The borrowing and checking forms say the same.
        assert_eq!(
            super::normalized_datetime(case).as_deref(),
            super::normalize_datetime(case).as_deref(),
            "{case}"
        );
        assert_eq!(
            super::is_datetime(case),
            super::normalize_datetime(case).is_some(),
            "{case}"
        );
    }
    // Only text already as stored is borrowed.
    assert!(matches!(
        super::normalized_datetime("2024-03-01T09:30:00Z"),
        Some(std::borrow::Cow::Borrowed(_))
    ));
    assert!(matches!(
        super::normalized_datetime("2024-03-01"),
        Some(std::borrow::Cow::Owned(_))
    ));
}
