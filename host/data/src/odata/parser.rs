//! Recursive-descent parser: `or` < `and` < `not` < comparison, left associative.

use super::lexer::{lex, Tok, Token};
use super::{CmpOp, Expr, Field, Func, Lit, Literal, OrderKey, QueryOptionError};

const FILTER: &str = "$filter";
const ORDERBY: &str = "$orderby";
const OPERATORS: &str = "a comparison operator (eq, ne, gt, ge, lt, le, in)";

struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: u32,
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

    fn or_expr(&mut self) -> Result<Expr, QueryOptionError> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryOptionError> {
        let mut left = self.unary()?;
        while self.eat_keyword("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, QueryOptionError> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
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

    fn primary(&mut self) -> Result<Expr, QueryOptionError> {
        if self.peek().map(|t| &t.tok) == Some(&Tok::LParen) {
            self.i += 1;
            let e = self.or_expr()?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(e);
        }
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

/// Parse a `$filter` expression.
pub fn parse_filter(text: &str) -> Result<Expr, QueryOptionError> {
    let toks = lex(FILTER, text)?;
    let mut p = Parser {
        toks,
        i: 0,
        end: u32::try_from(text.chars().count()).unwrap_or(u32::MAX),
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

/// Parse `$orderby`: `Field [asc|desc], ...`.
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
