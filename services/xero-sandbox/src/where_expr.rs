//! The `where` query parameter: the subset of Xero's LINQ-like filter language that clients send.
//!
//! `Field == "text"`, `!=`, `>=`, `<=`, `>`, `<`; nested fields (`Contact.ContactID`); literals
//! `"text"`, numbers, `true`/`false`/`null`, `Guid("...")`, `DateTime(y,m,d[,h,m,s])`; method calls
//! `.Contains("x")`, `.StartsWith("x")`, `.EndsWith("x")`; `AND`/`&&`, `OR`/`||`, `NOT`/`!`,
//! parentheses. String comparisons ignore case, as Xero's do.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use std::cmp::Ordering;
use std::str::FromStr;

/// A `where` expression that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("could not parse where clause: {0}")]
pub struct ParseError(pub String);

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(Decimal),
    Bool(bool),
    Null,
    Time(DateTime<Utc>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Vec<String>, Op, Lit),
    Call(Vec<String>, String, String),
    Truthy(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(Op),
    And,
    Or,
    Not,
    LParen,
    RParen,
    Comma,
    Dot,
}

fn lex(s: &str) -> Result<Vec<Tok>, ParseError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        match ch {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '.' => {
                out.push(Tok::Dot);
                i += 1
            }
            '"' | '\'' => {
                let quote = ch;
                let mut v = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None => return Err(ParseError("unterminated string".into())),
                        Some('\\') if c.get(i + 1).is_some() => {
                            v.push(c[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&x) => {
                            v.push(x);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' if next == Some('=') => {
                out.push(Tok::Op(Op::Eq));
                i += 2
            }
            '=' => {
                out.push(Tok::Op(Op::Eq));
                i += 1
            }
            '!' if next == Some('=') => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            '!' => {
                out.push(Tok::Not);
                i += 1
            }
            '>' if next == Some('=') => {
                out.push(Tok::Op(Op::Ge));
                i += 2
            }
            '<' if next == Some('=') => {
                out.push(Tok::Op(Op::Le));
                i += 2
            }
            '<' if next == Some('>') => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            '>' => {
                out.push(Tok::Op(Op::Gt));
                i += 1
            }
            '<' => {
                out.push(Tok::Op(Op::Lt));
                i += 1
            }
            '&' if next == Some('&') => {
                out.push(Tok::And);
                i += 2
            }
            '|' if next == Some('|') => {
                out.push(Tok::Or);
                i += 2
            }
            d if d.is_ascii_digit() || (d == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < c.len() && (c[i].is_ascii_digit() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(c[start..i].iter().collect()));
            }
            a if a.is_alphabetic() || a == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                out.push(match word.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    _ => Tok::Ident(word),
                });
            }
            other => return Err(ParseError(format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(ParseError(format!("expected {t:?}, found {other:?}"))),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let mut path = Vec::new();
        match self.next() {
            Some(Tok::Ident(id)) => path.push(id),
            other => return Err(ParseError(format!("expected a field, found {other:?}"))),
        }
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let Some(Tok::Ident(id)) = self.next() else {
                return Err(ParseError("expected a field after '.'".into()));
            };
            if self.peek() == Some(&Tok::LParen) {
                self.pos += 1;
                let arg = match self.next() {
                    Some(Tok::Str(s)) => s,
                    other => {
                        return Err(ParseError(format!(
                            "expected a string argument, found {other:?}"
                        )));
                    }
                };
                self.expect(Tok::RParen)?;
                return Ok(Expr::Call(path, id.to_ascii_lowercase(), arg));
            }
            path.push(id);
        }
        match self.peek() {
            Some(Tok::Op(op)) => {
                let op = *op;
                self.pos += 1;
                Ok(Expr::Cmp(path, op, self.literal()?))
            }
            _ => Ok(Expr::Truthy(path)),
        }
    }

    fn int_args(&mut self) -> Result<Vec<i64>, ParseError> {
        self.expect(Tok::LParen)?;
        let mut v = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Num(n)) => v.push(
                    n.parse()
                        .map_err(|_| ParseError(format!("bad number {n}")))?,
                ),
                other => return Err(ParseError(format!("expected a number, found {other:?}"))),
            }
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => return Ok(v),
                other => return Err(ParseError(format!("expected ',' or ')', found {other:?}"))),
            }
        }
    }

    fn literal(&mut self) -> Result<Lit, ParseError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Num(n)) => Decimal::from_str(&n)
                .map(Lit::Num)
                .map_err(|_| ParseError(format!("bad number {n}"))),
            Some(Tok::Ident(id)) => match id.to_ascii_lowercase().as_str() {
                "true" => Ok(Lit::Bool(true)),
                "false" => Ok(Lit::Bool(false)),
                "null" => Ok(Lit::Null),
                "guid" => {
                    self.expect(Tok::LParen)?;
                    let Some(Tok::Str(s)) = self.next() else {
                        return Err(ParseError("Guid needs a string".into()));
                    };
                    self.expect(Tok::RParen)?;
                    Ok(Lit::Str(s))
                }
                "datetime" => {
                    let a = self.int_args()?;
                    let get = |i: usize| a.get(i).copied().unwrap_or(0);
                    let d = NaiveDate::from_ymd_opt(get(0) as i32, get(1) as u32, get(2) as u32)
                        .and_then(|d| d.and_hms_opt(get(3) as u32, get(4) as u32, get(5) as u32))
                        .ok_or_else(|| ParseError("invalid DateTime".into()))?;
                    Ok(Lit::Time(Utc.from_utc_datetime(&d)))
                }
                _ => Err(ParseError(format!("unknown literal {id}"))),
            },
            other => Err(ParseError(format!("expected a value, found {other:?}"))),
        }
    }
}

/// Parses a `where` expression.
pub fn parse(s: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: lex(s)?,
        pos: 0,
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(ParseError(format!("unexpected {:?}", p.toks[p.pos])));
    }
    Ok(e)
}

fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path {
        let obj = cur.as_object()?;
        cur = obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(seg))
            .map(|(_, v)| v)?;
    }
    Some(cur)
}

fn compare(v: Option<&Value>, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (None | Some(Value::Null), Lit::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), _) | (_, Lit::Null) => None,
        (Some(Value::String(s)), Lit::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        (Some(Value::String(s)), Lit::Time(t)) => crate::xjson::parse_instant(s).map(|d| d.cmp(t)),
        (Some(Value::String(s)), Lit::Num(n)) => Decimal::from_str(s).ok().map(|d| d.cmp(n)),
        // Filtering only: the number's shortest text is the decimal that was stored.
        (Some(Value::Number(x)), Lit::Num(n)) => {
            Decimal::from_str(&x.to_string()).ok().map(|d| d.cmp(n))
        }
        (Some(Value::Number(x)), Lit::Str(s)) => {
            let a = Decimal::from_str(&x.to_string()).ok()?;
            Decimal::from_str(s).ok().map(|b| a.cmp(&b))
        }
        (Some(Value::Bool(b)), Lit::Bool(l)) => Some(b.cmp(l)),
        (Some(Value::Bool(b)), Lit::Str(s)) => Some(b.to_string().cmp(&s.to_lowercase())),
        _ => None,
    }
}

/// Whether a document (as Xero JSON) matches.
pub fn eval(e: &Expr, doc: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, doc) && eval(b, doc),
        Expr::Or(a, b) => eval(a, doc) || eval(b, doc),
        Expr::Not(a) => !eval(a, doc),
        Expr::Truthy(p) => matches!(lookup(doc, p), Some(Value::Bool(true))),
        Expr::Call(p, m, arg) => {
            let Some(Value::String(s)) = lookup(doc, p) else {
                return false;
            };
            let (s, arg) = (s.to_lowercase(), arg.to_lowercase());
            match m.as_str() {
                "contains" => s.contains(&arg),
                "startswith" => s.starts_with(&arg),
                "endswith" => s.ends_with(&arg),
                _ => false,
            }
        }
        Expr::Cmp(p, op, lit) => {
            let ord = compare(lookup(doc, p), lit);
            match op {
                Op::Eq => ord == Some(Ordering::Equal),
                Op::Ne => ord != Some(Ordering::Equal),
                Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                Op::Gt => ord == Some(Ordering::Greater),
                Op::Lt => ord == Some(Ordering::Less),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(expr: &str, doc: &Value) -> bool {
        eval(&parse(expr).unwrap(), doc)
    }

    #[test]
    fn forms_clients_send() {
        let inv = json!({
            "Status": "AUTHORISED", "Type": "ACCREC", "Date": "/Date(1793491200000+0000)/",
            "Contact": {"ContactID": "3E776C4B-EA9E-4BB1-96BE-6B0C7A71A37F", "Name": "Ridgeway"},
            "Total": 115.5, "EmailAddress": "a@b.c", "SystemAccount": "ROUNDING"
        });
        assert!(m(r#"Status=="AUTHORISED" AND Type=="ACCREC""#, &inv));
        assert!(m(r#"SystemAccount=="ROUNDING""#, &inv));
        assert!(m(r#"EmailAddress=="A@B.C""#, &inv));
        assert!(m(
            r#"Contact.ContactID==Guid("3e776c4b-ea9e-4bb1-96be-6b0c7a71a37f")"#,
            &inv
        ));
        assert!(m(
            r#"Date>=DateTime(2026,11,01) AND Status=="AUTHORISED""#,
            &inv
        ));
        assert!(!m(r#"Date>=DateTime(2026,11,02)"#, &inv));
        assert!(m(r#"Date<=DateTime(2026, 11, 01)"#, &inv));
        assert!(m(r#"Status!="PAID" && (Total>=100 || Type=="X")"#, &inv));
        assert!(m(r#"Contact.Name.StartsWith("ridge")"#, &inv));
        assert!(!m(r#"Status=="DRAFT" OR Status=="PAID""#, &inv));
        assert!(m(r#"Reference==null"#, &inv));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(r#"Status=="#).is_err());
        assert!(parse(r#"Status=="x" AND"#).is_err());
        assert!(parse(r#"Status $ 3"#).is_err());
    }
}
