//! OData-style query options (`$filter`, `$orderby`, `$select`), parsed into
//! an AST and compiled to parameterised SQLite SQL. User text reaches SQL only
//! as `?` parameters and as column names checked against the entity's schema.

mod compile;
mod lexer;
mod parser;

use std::fmt;

pub use compile::{check_orderby, check_select, compile_filter};
pub use parser::{parse_filter, parse_orderby};

/// Logical column types and their storage: TEXT, INTEGER, REAL, INTEGER 0/1,
/// and TEXT holding `YYYY-MM-DDTHH:MM:SSZ` (UTC) so text order is time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumString, strum::IntoStaticStr)]
#[strum(ascii_case_insensitive)]
pub enum ColumnType {
    #[strum(to_string = "string", serialize = "text")]
    String,
    #[strum(to_string = "integer", serialize = "int")]
    Integer,
    #[strum(to_string = "decimal", serialize = "number", serialize = "float")]
    Decimal,
    #[strum(to_string = "boolean", serialize = "bool")]
    Boolean,
    #[strum(to_string = "datetime", serialize = "date-time", serialize = "date")]
    DateTime,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::String => "a string",
            ColumnType::Integer => "an integer",
            ColumnType::Decimal => "a decimal",
            ColumnType::Boolean => "a boolean",
            ColumnType::DateTime => "a date-time",
        })
    }
}

/// The columns of one entity, in declaration order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    pub columns: Vec<(String, ColumnType)>,
}

impl Schema {
    /// The type of a column.
    pub fn get(&self, name: &str) -> Option<ColumnType> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
    }
}

/// A query option that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptionError {
    /// `$filter`, `$orderby`, `$select`, `$top` or `$skip`.
    pub option: &'static str,
    /// 0-based character offset in that option's text.
    pub position: u32,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for QueryOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.option, self.position, self.message)
    }
}

impl std::error::Error for QueryOptionError {}

/// A field reference with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub pos: u32,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(i64),
    Dec(f64),
    Bool(bool),
    Null,
    /// Already normalised to `YYYY-MM-DDTHH:MM:SSZ`.
    DateTime(String),
}

/// A literal with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub value: Lit,
    pub pos: u32,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// String functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Contains,
    StartsWith,
    EndsWith,
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Field,
        op: CmpOp,
        value: Literal,
    },
    In {
        field: Field,
        values: Vec<Literal>,
    },
    Call {
        func: Func,
        field: Field,
        value: Literal,
    },
}

impl Expr {
    /// Every field the filter names, in the order written.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Expr::Not(a) => stack.push(a),
                Expr::Cmp { field, .. } | Expr::In { field, .. } | Expr::Call { field, .. } => {
                    out.push(field)
                }
            }
        }
        out
    }
}

/// One `$orderby` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub field: String,
    pub descending: bool,
    pub position: u32,
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Lit::Int(n) => write!(f, "{n}"),
            Lit::Dec(x) => write!(f, "{x:?}"),
            Lit::Bool(b) => write!(f, "{b}"),
            Lit::Null => f.write_str("null"),
            Lit::DateTime(d) => f.write_str(d),
        }
    }
}

impl fmt::Display for Expr {
    /// Canonical, fully parenthesised text: equal filters print equal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Not(e) => write!(f, "(not {e})"),
            Expr::Cmp { field, op, value } => {
                let op = match op {
                    CmpOp::Eq => "eq",
                    CmpOp::Ne => "ne",
                    CmpOp::Gt => "gt",
                    CmpOp::Ge => "ge",
                    CmpOp::Lt => "lt",
                    CmpOp::Le => "le",
                };
                write!(f, "({} {op} {})", field.name, value.value)
            }
            Expr::In { field, values } => {
                let list: Vec<String> = values.iter().map(|v| v.value.to_string()).collect();
                write!(f, "({} in ({}))", field.name, list.join(","))
            }
            Expr::Call { func, field, value } => {
                let name = match func {
                    Func::Contains => "contains",
                    Func::StartsWith => "startswith",
                    Func::EndsWith => "endswith",
                };
                write!(f, "{name}({},{})", field.name, value.value)
            }
        }
    }
}

/// `2024-03-01`, `2024-03-01 09:30:00`, or RFC 3339 with any offset, as
/// `YYYY-MM-DDTHH:MM:SSZ` in UTC (sub-seconds dropped, so text order is time order).
pub fn normalize_datetime(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};
    let out = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let utc = if let Ok(dt) = OffsetDateTime::parse(s, &Rfc3339) {
        dt.to_offset(UtcOffset::UTC)
    } else if let Ok(dt) = PrimitiveDateTime::parse(
        s,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    ) {
        dt.assume_utc()
    } else if let Ok(dt) = PrimitiveDateTime::parse(
        s,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ) {
        dt.assume_utc()
    } else if let Ok(d) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        d.midnight().assume_utc()
    } else {
        return None;
    };
    utc.format(&out).ok()
}

/// The canonical text of a filter (a cache key for paging cursors).
pub fn canonical_filter(expr: &Expr) -> String {
    expr.to_string()
}

#[cfg(test)]
mod tests;
