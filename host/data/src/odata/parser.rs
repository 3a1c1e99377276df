//! Parser: `or` < `and` < `not` < comparison, left associative.
//!
//! A recursive descent turned into loops over an explicit stack of open
//! parentheses, so its stack use does not depend on the input. Nesting is
//! still bounded by [`MAX_FILTER_DEPTH`] and terms by [`MAX_FILTER_TERMS`],
//! which together bound the depth of the [`Expr`] tree it builds.

use super::lexer::{lex, Tok, Token};
use super::{
    CmpOp, Expr, Field, Func, Lit, Literal, OrderKey, QueryOptionError, MAX_FILTER_DEPTH,
    MAX_FILTER_TERMS, MAX_IN_VALUES, MAX_ORDERBY_KEYS,
};

const FILTER: &str = "$filter";
const ORDERBY: &str = "$orderby";
const OPERATORS: &str = "a comparison operator (eq, ne, gt, ge, lt, le, in)";

struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: u32,
    /// Open parentheses and `not`s around the current token.
    depth: usize,
    /// Comparisons, `in` lists and function calls so far.
    terms: usize,
}

/// One level of parentheses being parsed: what is on the left of the
/// operand being read.
#[derive(Default)]
struct Level {
    /// `left or` …
    or: Option<Expr>,
    /// `left and` …
    and: Option<Expr>,
    /// `not`s in front of the operand.
    nots: usize,
}

fn keyword(t: &Token) -> Option<&str> {
    match &t.tok {
        Tok::Ident(s) => Some(s.as_str()),
        _ => None,
    }
}

fn is_reserved(s: &str) -> bool {
    matches!(
        s,
        "and"
            | "or"
            | "not"
            | "eq"
            | "ne"
            | "gt"
            | "ge"
            | "lt"
            | "le"
            | "in"
            | "true"
            | "false"
            | "null"
    )
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn err_here(&self, message: String) -> QueryOptionError {
        QueryOptionError {
            option: FILTER,
            position: self.peek().map_or(self.end, |t| t.pos),
            message,
        }
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "end of input".to_owned(), |t| format!("'{}'", t.text))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek().and_then(keyword) == Some(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), QueryOptionError> {
        if self.peek().map(|t| &t.tok) == Some(tok) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err_here(format!("expected {what} but found {}", self.found())))
        }
    }

    /// Enter one more level of parentheses or `not`, at the current token.
    fn enter(&mut self) -> Result<(), QueryOptionError> {
        if self.depth == MAX_FILTER_DEPTH {
            return Err(self.err_here(format!(
                "nesting deeper than {MAX_FILTER_DEPTH} levels (MAX_FILTER_DEPTH)"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    /// `or_expr := and_expr ('or' and_expr)*`, `and_expr := unary ('and'
    /// unary)*`, `unary := 'not'* primary`, `primary := '(' or_expr ')' |
    /// term`, parsed with a stack of open parentheses instead of recursion.
    /// Left-associative, and checked in the order a recursive descent would.
    fn or_expr(&mut self) -> Result<Expr, QueryOptionError> {
        let mut open: Vec<Level> = Vec::new();
        let mut level = Level::default();
        loop {
            // unary: 'not'* then '(' (a new level) or a term.
            while self.peek().and_then(keyword) == Some("not") {
                self.enter()?;
                self.i += 1;
                level.nots += 1;
            }
            if self.peek().map(|t| &t.tok) == Some(&Tok::LParen) {
                self.enter()?;
                self.i += 1;
                open.push(std::mem::take(&mut level));
                continue;
            }
            let mut operand = self.term()?;
            // Fold the operand into its level, closing levels until one
            // continues with 'and' or 'or', or the outermost one ends.
            loop {
                for _ in 0..level.nots {
                    operand = Expr::Not(Box::new(operand));
                }
                self.depth -= level.nots;
                level.nots = 0;
                let and = match level.and.take() {
                    Some(left) => Expr::And(Box::new(left), Box::new(operand)),
                    None => operand,
                };
                if self.eat_keyword("and") {
                    level.and = Some(and);
                    break;
                }
                let or = match level.or.take() {
                    Some(left) => Expr::Or(Box::new(left), Box::new(and)),
                    None => and,
                };
                if self.eat_keyword("or") {
                    level.or = Some(or);
                    break;
                }
                let Some(outer) = open.pop() else {
                    return Ok(or);
                };
                self.expect(&Tok::RParen, "')'")?;
                self.depth -= 1;
                level = outer;
                operand = or;
            }
        }
    }

    fn field(&mut self) -> Result<Field, QueryOptionError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(name),
                pos,
                ..
            }) if !is_reserved(name) => {
                let f = Field {
                    name: name.clone(),
                    pos: *pos,
                };
                self.i += 1;
                Ok(f)
            }
            _ => Err(self.err_here(format!("expected a field name but found {}", self.found()))),
        }
    }

    fn literal(&mut self) -> Result<Literal, QueryOptionError> {
        let Some(t) = self.peek() else {
            return Err(self.err_here("expected a value but found end of input".into()));
        };
        let value = match &t.tok {
            Tok::Str(s) => Lit::Str(s.clone()),
            Tok::Int(n) => Lit::Int(*n),
            Tok::Dec(x) => Lit::Dec(*x),
            Tok::DateTime(d) => Lit::DateTime(d.clone()),
            Tok::Ident(k) if k == "true" => Lit::Bool(true),
            Tok::Ident(k) if k == "false" => Lit::Bool(false),
            Tok::Ident(k) if k == "null" => Lit::Null,
            _ => {
                return Err(self.err_here(format!(
                    "expected a value (a 'string', number, true, false, null or date-time) but found {}",
                    self.found()
                )))
            }
        };
        let pos = t.pos;
        self.i += 1;
        Ok(Literal { value, pos })
    }

    /// A comparison, `in` list or function call: one of at most
    /// [`MAX_FILTER_TERMS`].
    fn term(&mut self) -> Result<Expr, QueryOptionError> {
        if self.terms == MAX_FILTER_TERMS {
            return Err(self.err_here(format!(
                "more than {MAX_FILTER_TERMS} comparisons and function calls (MAX_FILTER_TERMS)"
            )));
        }
        self.terms += 1;
        let func = match self.peek().and_then(keyword) {
            Some("contains") => Some(Func::Contains),
            Some("startswith") => Some(Func::StartsWith),
            Some("endswith") => Some(Func::EndsWith),
            _ => None,
        };
        if let Some(func) = func {
            if self.toks.get(self.i + 1).map(|t| &t.tok) == Some(&Tok::LParen) {
                self.i += 2;
                let field = self.field()?;
                self.expect(&Tok::Comma, "','")?;
                let value = self.literal()?;
                self.expect(&Tok::RParen, "')'")?;
                return Ok(Expr::Call { func, field, value });
            }
        }
        let field = self.field()?;
        let op = match self.peek().and_then(keyword) {
            Some("eq") => CmpOp::Eq,
            Some("ne") => CmpOp::Ne,
            Some("gt") => CmpOp::Gt,
            Some("ge") => CmpOp::Ge,
            Some("lt") => CmpOp::Lt,
            Some("le") => CmpOp::Le,
            Some("in") => {
                self.i += 1;
                self.expect(&Tok::LParen, "'(' after 'in'")?;
                let mut values = vec![self.literal()?];
                while self.peek().map(|t| &t.tok) == Some(&Tok::Comma) {
                    self.i += 1;
                    if values.len() == MAX_IN_VALUES {
                        return Err(self.err_here(format!(
                            "more than {MAX_IN_VALUES} values in one 'in' list (MAX_IN_VALUES)"
                        )));
                    }
                    values.push(self.literal()?);
                }
                self.expect(&Tok::RParen, "',' or ')'")?;
                return Ok(Expr::In { field, values });
            }
            _ => {
                return Err(self.err_here(format!(
                    "expected {OPERATORS} after field '{}' but found {}",
                    field.name,
                    self.found()
                )))
            }
        };
        self.i += 1;
        let value = self.literal()?;
        Ok(Expr::Cmp { field, op, value })
    }
}

/// Parse a `$filter` expression of at most [`super::MAX_QUERY_OPTION_BYTES`],
/// [`MAX_FILTER_DEPTH`] levels of nesting, [`MAX_FILTER_TERMS`] terms and
/// [`MAX_IN_VALUES`] values per `in` list.
pub fn parse_filter(text: &str) -> Result<Expr, QueryOptionError> {
    let toks = lex(FILTER, text)?;
    let mut p = Parser {
        toks,
        i: 0,
        end: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
        depth: 0,
        terms: 0,
    };
    if p.toks.is_empty() {
        return Err(p.err_here("expected an expression but found end of input".into()));
    }
    let e = p.or_expr()?;
    if p.i < p.toks.len() {
        return Err(p.err_here(format!(
            "expected 'and', 'or' or the end but found {}",
            p.found()
        )));
    }
    Ok(e)
}

/// Parse `$orderby`: `Field [asc|desc], ...`, at most [`MAX_ORDERBY_KEYS`]
/// keys.
pub fn parse_orderby(text: &str) -> Result<Vec<OrderKey>, QueryOptionError> {
    let toks = lex(ORDERBY, text)?;
    let end = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
    let err = |pos: u32, message: String| QueryOptionError {
        option: ORDERBY,
        position: pos,
        message,
    };
    let mut keys: Vec<OrderKey> = Vec::new();
    let mut i = 0;
    loop {
        let (field, pos) = match toks.get(i) {
            Some(Token {
                tok: Tok::Ident(name),
                pos,
                ..
            }) => (name.clone(), *pos),
            Some(t) => {
                return Err(err(
                    t.pos,
                    format!("expected a field name but found '{}'", t.text),
                ))
            }
            None => {
                return Err(err(
                    end,
                    "expected a field name but found end of input".into(),
                ))
            }
        };
        if keys.len() == MAX_ORDERBY_KEYS {
            return Err(err(
                pos,
                format!("more than {MAX_ORDERBY_KEYS} keys (MAX_ORDERBY_KEYS)"),
            ));
        }
        i += 1;
        let mut descending = false;
        if let Some(Tok::Ident(dir)) = toks.get(i).map(|t| &t.tok) {
            match dir.as_str() {
                "asc" => i += 1,
                "desc" => {
                    descending = true;
                    i += 1
                }
                _ => {}
            }
        }
        if keys.iter().any(|k| k.field == field) {
            return Err(err(pos, format!("field '{field}' appears twice")));
        }
        keys.push(OrderKey {
            field,
            descending,
            position: pos,
        });
        match toks.get(i) {
            None => return Ok(keys),
            Some(Token {
                tok: Tok::Comma, ..
            }) => i += 1,
            Some(t) => {
                return Err(err(
                    t.pos,
                    format!(
                        "expected 'asc', 'desc', ',' or the end but found '{}'",
                        t.text
                    ),
                ))
            }
        }
    }
}
