//! Type-checked compilation of a filter to SQL with `?` parameters.

use rusqlite::types::Value;

use super::{
    CmpOp, ColumnType, Expr, Field, Func, Lit, Literal, OrderKey, QueryOptionError, Schema,
    MAX_ORDERBY_KEYS, MAX_QUERY_OPTION_BYTES, MAX_SELECT_FIELDS,
};

const FILTER: &str = "$filter";
const SELECT: &str = "$select";

fn err(position: u32, message: String) -> QueryOptionError {
    QueryOptionError {
        option: FILTER,
        position,
        message,
    }
}

fn column(schema: &Schema, f: &Field) -> Result<ColumnType, QueryOptionError> {
    schema
        .get(&f.name)
        .ok_or_else(|| err(f.pos, format!("unknown field '{}'", f.name)))
}

/// A literal as a value of the column's type.
fn value(field: &Field, ty: ColumnType, lit: &Literal) -> Result<Value, QueryOptionError> {
    let mismatch = || {
        let example = match ty {
            ColumnType::String => "a quoted string such as 'text'",
            ColumnType::Integer => "a whole number",
            ColumnType::Decimal => "a number",
            ColumnType::Boolean => "true or false",
            ColumnType::DateTime => "a date-time such as 2024-03-01T09:30:00Z",
        };
        err(
            lit.pos,
            format!(
                "field '{}' is {ty}: expected {example} but found {}",
                field.name, lit.value
            ),
        )
    };
    Ok(match (ty, &lit.value) {
        (ColumnType::String, Lit::Str(s)) => Value::Text(s.clone()),
        (ColumnType::Integer, Lit::Int(n)) => Value::Integer(*n),
        (ColumnType::Integer, Lit::Dec(x)) => Value::Real(*x),
        (ColumnType::Decimal, Lit::Int(n)) => Value::Real(*n as f64),
        (ColumnType::Decimal, Lit::Dec(x)) => Value::Real(*x),
        (ColumnType::Boolean, Lit::Bool(b)) => Value::Integer(i64::from(*b)),
        (ColumnType::DateTime, Lit::DateTime(d)) => Value::Text(d.clone()),
        (ColumnType::DateTime, Lit::Str(s)) => {
            Value::Text(super::normalize_datetime(s).ok_or_else(mismatch)?)
        }
        _ => return Err(mismatch()),
    })
}

fn quoted(f: &Field) -> String {
    format!("\"{}\"", f.name)
}

/// SQL for `field op lit`.
fn comparison(
    field: &Field,
    op: CmpOp,
    lit: &Literal,
    schema: &Schema,
    params: &mut Vec<Value>,
) -> Result<String, QueryOptionError> {
    let ty = column(schema, field)?;
    let col = quoted(field);
    if lit.value == Lit::Null {
        return match op {
            CmpOp::Eq => Ok(format!("({col} IS NULL)")),
            CmpOp::Ne => Ok(format!("({col} IS NOT NULL)")),
            _ => Err(err(
                lit.pos,
                "null can only be compared with eq or ne".into(),
            )),
        };
    }
    params.push(value(field, ty, lit)?);
    Ok(match op {
        CmpOp::Eq => format!("({col} = ?)"),
        CmpOp::Ne => format!("({col} IS NULL OR {col} <> ?)"),
        CmpOp::Gt => format!("({col} > ?)"),
        CmpOp::Ge => format!("({col} >= ?)"),
        CmpOp::Lt => format!("({col} < ?)"),
        CmpOp::Le => format!("({col} <= ?)"),
    })
}

/// SQL for `field in (values)`.
fn in_list(
    field: &Field,
    values: &[Literal],
    schema: &Schema,
    params: &mut Vec<Value>,
) -> Result<String, QueryOptionError> {
    let ty = column(schema, field)?;
    let col = quoted(field);
    let mut marks = Vec::new();
    let mut with_null = false;
    for lit in values {
        if lit.value == Lit::Null {
            with_null = true;
        } else {
            params.push(value(field, ty, lit)?);
            marks.push("?");
        }
    }
    Ok(match (marks.is_empty(), with_null) {
        (true, _) => format!("({col} IS NULL)"),
        (false, false) => format!("({col} IN ({}))", marks.join(", ")),
        (false, true) => format!("({col} IN ({}) OR {col} IS NULL)", marks.join(", ")),
    })
}

/// SQL for `func(field, lit)`.
fn call(
    func: Func,
    field: &Field,
    lit: &Literal,
    schema: &Schema,
    params: &mut Vec<Value>,
) -> Result<String, QueryOptionError> {
    let ty = column(schema, field)?;
    if ty != ColumnType::String {
        return Err(err(
            field.pos,
            format!(
                "field '{}' is {ty}: string functions need a string field",
                field.name
            ),
        ));
    }
    let Lit::Str(s) = &lit.value else {
        return Err(err(
            lit.pos,
            format!("expected a quoted string but found {}", lit.value),
        ));
    };
    let col = quoted(field);
    Ok(match func {
        Func::Contains => {
            params.push(Value::Text(s.clone()));
            format!("(instr({col}, ?) > 0)")
        }
        Func::StartsWith => {
            params.push(Value::Text(s.clone()));
            params.push(Value::Text(s.clone()));
            format!("(substr({col}, 1, length(?)) = ?)")
        }
        Func::EndsWith => {
            params.push(Value::Text(s.clone()));
            params.push(Value::Text(s.clone()));
            format!("(substr({col}, length({col}) - length(?) + 1) = ?)")
        }
    })
}

/// The SQL of a whole filter, written left to right with an explicit stack
/// (parameters in the order of their `?`), so the depth of the tree never
/// costs stack.
fn compile(e: &Expr, schema: &Schema, params: &mut Vec<Value>) -> Result<String, QueryOptionError> {
    enum Step<'a> {
        Expr(&'a Expr),
        Text(&'static str),
    }
    let mut sql = String::new();
    let mut todo = vec![Step::Expr(e)];
    while let Some(step) = todo.pop() {
        match step {
            Step::Text(t) => sql.push_str(t),
            Step::Expr(Expr::And(a, b)) => {
                sql.push('(');
                todo.extend([
                    Step::Text(")"),
                    Step::Expr(b),
                    Step::Text(" AND "),
                    Step::Expr(a),
                ]);
            }
            Step::Expr(Expr::Or(a, b)) => {
                sql.push('(');
                todo.extend([
                    Step::Text(")"),
                    Step::Expr(b),
                    Step::Text(" OR "),
                    Step::Expr(a),
                ]);
            }
            // A comparison with NULL is unknown; OData treats it as false, so
            // `not` must see false, not unknown.
            Step::Expr(Expr::Not(a)) => {
                sql.push_str("(NOT COALESCE(");
                todo.extend([Step::Text(", 0))"), Step::Expr(a)]);
            }
            Step::Expr(Expr::Cmp { field, op, value }) => {
                sql.push_str(&comparison(field, *op, value, schema, params)?);
            }
            Step::Expr(Expr::In { field, values }) => {
                sql.push_str(&in_list(field, values, schema, params)?);
            }
            Step::Expr(Expr::Call { func, field, value }) => {
                sql.push_str(&call(*func, field, value, schema, params)?);
            }
        }
    }
    Ok(sql)
}

/// Compile a filter for `schema`: a SQL condition and its parameters.
pub fn compile_filter(
    expr: &Expr,
    schema: &Schema,
) -> Result<(String, Vec<Value>), QueryOptionError> {
    let mut params = Vec::new();
    let sql = compile(expr, schema, &mut params)?;
    Ok((sql, params))
}

/// Every `$orderby` field must exist, and there are at most
/// [`MAX_ORDERBY_KEYS`] of them.
pub fn check_orderby(keys: &[OrderKey], schema: &Schema) -> Result<(), QueryOptionError> {
    if let Some(k) = keys.get(MAX_ORDERBY_KEYS) {
        return Err(QueryOptionError {
            option: "$orderby",
            position: k.position,
            message: format!("more than {MAX_ORDERBY_KEYS} keys (MAX_ORDERBY_KEYS)"),
        });
    }
    for k in keys {
        if schema.get(&k.field).is_none() {
            return Err(QueryOptionError {
                option: "$orderby",
                position: k.position,
                message: format!("unknown field '{}'", k.field),
            });
        }
    }
    Ok(())
}

/// At most [`MAX_SELECT_FIELDS`] fields, and at most [`MAX_QUERY_OPTION_BYTES`]
/// when joined with commas (positions are characters in that text). Looks at
/// no more than the allowed text, however long the fields.
fn check_select_size(fields: &[String]) -> Result<(), QueryOptionError> {
    let mut bytes = 0usize;
    // Characters before the current one in the comma-joined text.
    let mut pos = 0usize;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            if bytes == MAX_QUERY_OPTION_BYTES {
                return Err(super::too_long(SELECT, pos));
            }
            bytes += 1;
            pos += 1;
        }
        if i == MAX_SELECT_FIELDS {
            return Err(QueryOptionError {
                option: SELECT,
                position: u32::try_from(pos).unwrap_or(u32::MAX),
                message: format!("more than {MAX_SELECT_FIELDS} fields (MAX_SELECT_FIELDS)"),
            });
        }
        for c in f.chars() {
            bytes += c.len_utf8();
            if bytes > MAX_QUERY_OPTION_BYTES {
                return Err(super::too_long(SELECT, pos));
            }
            pos += 1;
        }
    }
    Ok(())
}

/// Every `$select` field must exist, once; the position is in the
/// comma-joined list. At most [`MAX_SELECT_FIELDS`] fields and
/// [`MAX_QUERY_OPTION_BYTES`] of text.
pub fn check_select(fields: &[String], schema: &Schema) -> Result<(), QueryOptionError> {
    check_select_size(fields)?;
    let mut pos = 0usize;
    for (i, f) in fields.iter().enumerate() {
        if schema.get(f).is_none() {
            return Err(QueryOptionError {
                option: SELECT,
                position: u32::try_from(pos).unwrap_or(u32::MAX),
                message: format!("unknown field '{f}'"),
            });
        }
        if fields[..i].contains(f) {
            return Err(QueryOptionError {
                option: SELECT,
                position: u32::try_from(pos).unwrap_or(u32::MAX),
                message: format!("field '{f}' appears twice"),
            });
        }
        pos += f.chars().count() + 1;
    }
    Ok(())
}
