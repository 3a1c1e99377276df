//! OData-style query options (`$filter`, `$orderby`, `$select`), parsed into
//! an AST and compiled to parameterised SQLite SQL. User text reaches SQL only
//! as `?` parameters and as column names checked against the entity's schema.

mod compile;
mod lexer;
mod parser;

use std::borrow::Cow;
use std::fmt;

pub use compile::{check_orderby, check_select, compile_filter};
pub use parser::{parse_filter, parse_orderby};

// Limits on query options. The text comes from untrusted plugins
// (`entities.get-items`), the command line and config files; every limit
// fails with a [`QueryOptionError`] naming it, before the input can cost more
// than a bounded amount of stack, memory or SQLite work. No limit is meant to
// be reached by a query a person writes or a query builder generates.

/// Bytes of any one option's text (`$filter`, `$orderby`, and `$select`
/// with its fields joined by commas), checked before lexing.
///
/// Hand-written filters are tens of bytes and generated ones a few hundred;
/// 16 KiB is twice what nginx and Apache accept for a whole request line by
/// default, and holds an `in` list of a thousand ten-character keys. It bounds
/// the lexer's work and memory, the text echoed back in errors, and, as every
/// bound parameter needs a value of at least two bytes of text (`1,`), the
/// parameters of one filter to 8,192, a quarter of SQLite's 32,766.
pub const MAX_QUERY_OPTION_BYTES: usize = 16 * 1024;

/// Nesting of parentheses and `not` in one `$filter` (`not (a eq 1)` is two
/// levels).
///
/// Real filters nest three or four levels. Each `not` adds a level to the
/// [`Expr`] tree, so with [`MAX_FILTER_TERMS`] this bounds the depth of the
/// tree to `MAX_FILTER_TERMS + MAX_FILTER_DEPTH`, and that of the SQL it
/// compiles to to about 330, well under SQLite's limit of 1,000. The parser
/// keeps open parentheses on the heap, and compiling and printing walk the
/// tree with explicit stacks, so no stack grows with the nesting.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Comparisons, `in` lists and function calls in one `$filter`.
///
/// A chain of `and`/`or` builds a left-deep tree one level per term, so this
/// bounds the depth of the [`Expr`] tree (at most `MAX_FILTER_TERMS +
/// MAX_FILTER_DEPTH` levels) for everything that walks, clones or drops it
/// recursively, like the derived `Clone` and the drop glue. Real filters have a
/// handful of terms; many alternatives for one field belong in an `in` list,
/// which counts once.
pub const MAX_FILTER_TERMS: usize = 256;

/// Values in one `in (…)` list.
///
/// Each value is one bound parameter; a thousand keys is more than anyone
/// pastes into a filter, and [`MAX_QUERY_OPTION_BYTES`] keeps the total over
/// all lists and terms of a filter at 8,192, far below SQLite's 32,766
/// parameters.
pub const MAX_IN_VALUES: usize = 1_000;

/// Keys in one `$orderby`.
///
/// Sorting by more than a few fields is meaningless in practice, and the
/// keyset seek that serves `$skip` grows quadratically with the number of
/// keys (16 keys and the entity key: 153 comparisons and parameters).
pub const MAX_ORDERBY_KEYS: usize = 16;

/// Fields in one `$select`.
///
/// Entities have tens of columns, and a caller wanting more than this many
/// can leave `$select` out, which returns every column. Bounds the
/// duplicate check, which is quadratic.
pub const MAX_SELECT_FIELDS: usize = 256;

/// SQLite's default limit on bound parameters in one statement.
const SQLITE_MAX_VARIABLE_NUMBER: usize = 32_766;

// One parameter per two bytes of filter text at most (see
// `MAX_QUERY_OPTION_BYTES`), leaving room for the keyset seek's parameters.
const _: () = assert!(MAX_QUERY_OPTION_BYTES / 2 <= SQLITE_MAX_VARIABLE_NUMBER / 3);

/// `Err` when `text` is longer than [`MAX_QUERY_OPTION_BYTES`], at the first
/// character past the limit.
fn check_length(option: &'static str, text: &str) -> Result<(), QueryOptionError> {
    if text.len() <= MAX_QUERY_OPTION_BYTES {
        return Ok(());
    }
    let fitting = text
        .char_indices()
        .take_while(|(at, c)| at + c.len_utf8() <= MAX_QUERY_OPTION_BYTES)
        .count();
    Err(too_long(option, fitting))
}

/// The error for an option longer than [`MAX_QUERY_OPTION_BYTES`], at
/// character `position`.
fn too_long(option: &'static str, position: usize) -> QueryOptionError {
    QueryOptionError {
        option,
        position: u32::try_from(position).unwrap_or(u32::MAX),
        message: format!("longer than {MAX_QUERY_OPTION_BYTES} bytes (MAX_QUERY_OPTION_BYTES)"),
    }
}

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
    /// Iterative, so the depth of the tree never costs stack.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        enum Step<'a> {
            Expr(&'a Expr),
            Text(&'static str),
        }
        let mut todo = vec![Step::Expr(self)];
        while let Some(step) = todo.pop() {
            let e = match step {
                Step::Text(t) => {
                    f.write_str(t)?;
                    continue;
                }
                Step::Expr(e) => e,
            };
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    let op = if matches!(e, Expr::And(..)) {
                        " and "
                    } else {
                        " or "
                    };
                    f.write_str("(")?;
                    todo.extend([
                        Step::Text(")"),
                        Step::Expr(b),
                        Step::Text(op),
                        Step::Expr(a),
                    ]);
                }
                Expr::Not(a) => {
                    f.write_str("(not ")?;
                    todo.extend([Step::Text(")"), Step::Expr(a)]);
                }
                Expr::Cmp { field, op, value } => {
                    let op = match op {
                        CmpOp::Eq => "eq",
                        CmpOp::Ne => "ne",
                        CmpOp::Gt => "gt",
                        CmpOp::Ge => "ge",
                        CmpOp::Lt => "lt",
                        CmpOp::Le => "le",
                    };
                    write!(f, "({} {op} {})", field.name, value.value)?;
                }
                Expr::In { field, values } => {
                    let list: Vec<String> = values.iter().map(|v| v.value.to_string()).collect();
                    write!(f, "({} in ({}))", field.name, list.join(","))?;
                }
                Expr::Call { func, field, value } => {
                    let name = match func {
                        Func::Contains => "contains",
                        Func::StartsWith => "startswith",
                        Func::EndsWith => "endswith",
                    };
                    write!(f, "{name}({},{})", field.name, value.value)?;
                }
            }
        }
        Ok(())
    }
}

/// `2024-03-01`, `2024-03-01 09:30:00`, or RFC 3339 with any offset, as
/// `YYYY-MM-DDTHH:MM:SSZ` in UTC (sub-seconds dropped, so text order is time order).
pub fn normalize_datetime(s: &str) -> Option<String> {
    normalized_datetime(s).map(Cow::into_owned)
}

/// [`normalize_datetime`], borrowing `s` when it is already canonical (the
/// form files mostly hold), so that checking or storing it allocates nothing.
pub fn normalized_datetime(s: &str) -> Option<Cow<'_, str>> {
    if !year_first(s) {
        return None;
    }
    match canonical_form(s) {
        Some(Canonical::DateTime) => Some(Cow::Borrowed(s)),
        Some(Canonical::Date) => {
            // Not `format!`: its machinery costs more than the rest of the
            // check, and a file's dates take this path by the million.
            let mut at_midnight = String::with_capacity(s.len() + 10);
            at_midnight.push_str(s);
            at_midnight.push_str("T00:00:00Z");
            Some(Cow::Owned(at_midnight))
        }
        None => parse_datetime(s).map(Cow::Owned),
    }
}

/// Whether [`normalize_datetime`] reads `s`, without making its text.
pub fn is_datetime(s: &str) -> bool {
    year_first(s) && (canonical_form(s).is_some() || parse_datetime(s).is_some())
}

/// Every form starts with a year (four digits or more, perhaps signed) and
/// '-': anything else is not a date, and type inference asks this of every
/// text value (names, phone numbers).
fn year_first(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    digits >= 4 && unsigned.as_bytes().get(digits) == Some(&b'-')
}

/// The two forms files mostly hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canonical {
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DDTHH:MM:SSZ`, already as stored.
    DateTime,
}

/// Which of the two forms `s` is in, checked by hand (the general parser
/// costs about a microsecond a value); `None` leaves anything else to
/// [`parse_datetime`].
fn canonical_form(s: &str) -> Option<Canonical> {
    let b = s.as_bytes();
    if b.len() != 10 && b.len() != 20 {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u8> {
        b.get(from..to)?.iter().try_fold(0u8, |n, &c| {
            c.is_ascii_digit()
                .then(|| n.wrapping_mul(10).wrapping_add(c - b'0'))
        })
    };
    let year = b.get(..4)?.iter().try_fold(0i32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
    })?;
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = time::Month::try_from(num(5, 7)?).ok()?;
    time::Date::from_calendar_date(year, month, num(8, 10)?).ok()?;
    if b.len() == 10 {
        return Some(Canonical::Date);
    }
    if b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    (num(11, 13)? < 24 && num(14, 16)? < 60 && num(17, 19)? < 60).then_some(Canonical::DateTime)
}

/// [`normalize_datetime`] by the general parser.
fn parse_datetime(s: &str) -> Option<String> {
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
