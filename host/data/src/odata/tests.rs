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
