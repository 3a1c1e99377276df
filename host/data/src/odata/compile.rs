//! Type-checked compilation of a filter to SQL with `?` parameters.

use rusqlite::types::Value;

use super::{
    CmpOp, ColumnType, Expr, Field, Func, Lit, Literal, OrderKey, QueryOptionError, Schema,
};

const FILTER: &str = "$filter";

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

fn compile(e: &Expr, schema: &Schema, params: &mut Vec<Value>) -> Result<String, QueryOptionError> {
    Ok(match e {
        Expr::And(a, b) => format!(
            "({} AND {})",
            compile(a, schema, params)?,
            compile(b, schema, params)?
        ),
        Expr::Or(a, b) => format!(
            "({} OR {})",
            compile(a, schema, params)?,
            compile(b, schema, params)?
        ),
        // A comparison with NULL is unknown; OData treats it as false, so
        // `not` must see false, not unknown.
        Expr::Not(a) => format!("(NOT COALESCE({}, 0))", compile(a, schema, params)?),
        Expr::Cmp {
            field,
            op,
            value: lit,
        } => {
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
            match op {
                CmpOp::Eq => format!("({col} = ?)"),
                CmpOp::Ne => format!("({col} IS NULL OR {col} <> ?)"),
                CmpOp::Gt => format!("({col} > ?)"),
                CmpOp::Ge => format!("({col} >= ?)"),
                CmpOp::Lt => format!("({col} < ?)"),
                CmpOp::Le => format!("({col} <= ?)"),
            }
        }
        Expr::In { field, values } => {
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
            match (marks.is_empty(), with_null) {
                (true, _) => format!("({col} IS NULL)"),
                (false, false) => format!("({col} IN ({}))", marks.join(", ")),
                (false, true) => format!("({col} IN ({}) OR {col} IS NULL)", marks.join(", ")),
            }
        }
        Expr::Call {
            func,
            field,
            value: lit,
        } => {
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
            match func {
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
            }
        }
    })
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

/// Every `$orderby` field must exist.
pub fn check_orderby(keys: &[OrderKey], schema: &Schema) -> Result<(), QueryOptionError> {
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

/// Every `$select` field must exist; the position is in the comma-joined list.
pub fn check_select(fields: &[String], schema: &Schema) -> Result<(), QueryOptionError> {
    let mut pos = 0usize;
    for (i, f) in fields.iter().enumerate() {
        if schema.get(f).is_none() {
            return Err(QueryOptionError {
                option: "$select",
                position: u32::try_from(pos).unwrap_or(u32::MAX),
                message: format!("unknown field '{f}'"),
            });
        }
        if fields[..i].contains(f) {
            return Err(QueryOptionError {
                option: "$select",
                position: u32::try_from(pos).unwrap_or(u32::MAX),
                message: format!("field '{f}' appears twice"),
            });
        }
        pos += f.chars().count() + 1;
    }
    Ok(())
}
