//! The Lua expressions kurobako writes as parameter constraints (`c == "bar"`, `(a + b) < 2`):
//! a parameter exists only when its constraint, evaluated over the parameters before it, is
//! true. Covers Lua's expression grammar without function calls or tables: nil, booleans,
//! numbers, strings, names, arithmetic, `..`, comparisons, `and`/`or`/`not`, parentheses, with
//! Lua's precedence and truthiness (only nil and false are false).

use std::collections::HashMap;

/// A Lua value.
#[derive(Clone, Debug, PartialEq)]
pub enum LuaValue {
    Nil,
    Bool(bool),
    Number(f64),
    Str(String),
}

impl LuaValue {
    fn truthy(&self) -> bool {
        !matches!(self, LuaValue::Nil | LuaValue::Bool(false))
    }

    fn kind(&self) -> &'static str {
        match self {
            LuaValue::Nil => "nil",
            LuaValue::Bool(_) => "boolean",
            LuaValue::Number(_) => "number",
            LuaValue::Str(_) => "string",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Str(String),
    Name(String),
    Op(&'static str),
}

const OPERATORS: &[&str] = &[
    "==", "~=", "<=", ">=", "..", "<", ">", "+", "-", "*", "/", "%", "^", "(", ")",
];

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            let value = literal
                .parse::<f64>()
                .map_err(|_| format!("malformed number {literal}"))?;
            out.push(Token::Number(value));
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unfinished string".into()),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        let escaped = chars.get(i + 1).ok_or("unfinished string")?;
                        s.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
                        i += 2;
                        continue;
                    }
                    Some(&other) => s.push(other),
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str(s));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Name(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected `{c}`"))?;
            i += op.chars().count();
            out.push(Token::Op(op));
        }
    }
    Ok(out)
}

/// Binary operators by Lua's precedence, loosest first; `..` and `^` group to the right.
fn binary_precedence(token: &Token) -> Option<(u8, &'static str, bool)> {
    let op = match token {
        Token::Name(n) if n == "or" => "or",
        Token::Name(n) if n == "and" => "and",
        Token::Op(op) => op,
        _ => return None,
    };
    let (level, right) = match op {
        "or" => (1, false),
        "and" => (2, false),
        "<" | ">" | "<=" | ">=" | "~=" | "==" => (3, false),
        ".." => (4, true),
        "+" | "-" => (5, false),
        "*" | "/" | "%" => (6, false),
        "^" => (8, true),
        _ => return None,
    };
    Some((level, op, right))
}

/// Unary operators bind tighter than everything but `^`.
const UNARY: u8 = 7;

/// A parsed expression: evaluated after parsing, so `and` and `or` can skip their right side
/// as Lua does (`p0 ~= nil and p0 > 10` never compares nil).
enum Expr {
    Value(LuaValue),
    Var(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn expression(&mut self, min: u8) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some((level, op, right_assoc)) =
            self.tokens.get(self.at).and_then(binary_precedence)
        {
            if level < min {
                break;
            }
            self.at += 1;
            let next = if right_assoc { level } else { level + 1 };
            let right = self.expression(next)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Name(n)) if n == "not" => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.expression(UNARY)?)))
            }
            Some(Token::Op("-")) => {
                self.at += 1;
                Ok(Expr::Neg(Box::new(self.expression(UNARY)?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        Ok(match token {
            Token::Number(x) => Expr::Value(LuaValue::Number(x)),
            Token::Str(s) => Expr::Value(LuaValue::Str(s)),
            Token::Name(n) => match n.as_str() {
                "nil" => Expr::Value(LuaValue::Nil),
                "true" => Expr::Value(LuaValue::Bool(true)),
                "false" => Expr::Value(LuaValue::Bool(false)),
                "and" | "or" | "not" => return Err(format!("unexpected `{n}`")),
                _ => Expr::Var(n),
            },
            Token::Op("(") => {
                let inner = self.expression(1)?;
                if self.tokens.get(self.at) != Some(&Token::Op(")")) {
                    return Err("missing `)`".into());
                }
                self.at += 1;
                inner
            }
            Token::Op(op) => return Err(format!("unexpected `{op}`")),
        })
    }
}

fn eval(expr: &Expr, vars: &HashMap<String, LuaValue>) -> Result<LuaValue, String> {
    Ok(match expr {
        Expr::Value(v) => v.clone(),
        Expr::Var(name) => vars.get(name).cloned().unwrap_or(LuaValue::Nil),
        Expr::Not(inner) => LuaValue::Bool(!eval(inner, vars)?.truthy()),
        Expr::Neg(inner) => match eval(inner, vars)? {
            LuaValue::Number(x) => LuaValue::Number(-x),
            other => return Err(format!("attempt to negate a {} value", other.kind())),
        },
        Expr::Binary("and", left, right) => {
            let l = eval(left, vars)?;
            if l.truthy() {
                eval(right, vars)?
            } else {
                l
            }
        }
        Expr::Binary("or", left, right) => {
            let l = eval(left, vars)?;
            if l.truthy() {
                l
            } else {
                eval(right, vars)?
            }
        }
        Expr::Binary(op, left, right) => combine(op, eval(left, vars)?, eval(right, vars)?)?,
    })
}

fn combine(op: &str, left: LuaValue, right: LuaValue) -> Result<LuaValue, String> {
    use LuaValue::{Bool, Number, Str};
    let numbers = |l: &LuaValue, r: &LuaValue| match (l, r) {
        (Number(a), Number(b)) => Ok((*a, *b)),
        _ => Err(format!(
            "attempt to perform arithmetic on a {} value",
            if matches!(l, Number(_)) {
                r.kind()
            } else {
                l.kind()
            }
        )),
    };
    Ok(match op {
        "or" => {
            if left.truthy() {
                left
            } else {
                right
            }
        }
        "and" => {
            if left.truthy() {
                right
            } else {
                left
            }
        }
        "==" => Bool(left == right),
        "~=" => Bool(left != right),
        "<" | ">" | "<=" | ">=" => {
            let ordering = match (&left, &right) {
                (Number(a), Number(b)) => a.partial_cmp(b),
                (Str(a), Str(b)) => Some(a.cmp(b)),
                _ => {
                    return Err(format!(
                        "attempt to compare {} with {}",
                        left.kind(),
                        right.kind()
                    ))
                }
            };
            let Some(ordering) = ordering else {
                return Ok(Bool(false));
            };
            Bool(match op {
                "<" => ordering.is_lt(),
                ">" => ordering.is_gt(),
                "<=" => ordering.is_le(),
                _ => ordering.is_ge(),
            })
        }
        ".." => {
            let text = |v: &LuaValue| match v {
                Str(s) => Ok(s.clone()),
                Number(x) => Ok(x.to_string()),
                other => Err(format!("attempt to concatenate a {} value", other.kind())),
            };
            Str(text(&left)? + &text(&right)?)
        }
        _ => {
            let (a, b) = numbers(&left, &right)?;
            Number(match op {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                "%" => a - (a / b).floor() * b,
                _ => a.powf(b),
            })
        }
    })
}

/// Evaluates `text` with `vars` as its globals (unset names are nil).
///
/// ```ignore
/// let vars = HashMap::from([("c".to_string(), LuaValue::Str("bar".into()))]);
/// assert_eq!(evaluate(r#"c == "bar""#, &vars), Ok(LuaValue::Bool(true)));
/// ```
pub fn evaluate(text: &str, vars: &HashMap<String, LuaValue>) -> Result<LuaValue, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    // A chunk may be written `return <expr>`.
    if parser.tokens.first() == Some(&Token::Name("return".into())) {
        parser.at = 1;
    }
    let expr = parser.expression(1)?;
    if parser.at != parser.tokens.len() {
        return Err(format!(
            "unexpected {:?} after the expression",
            parser.tokens[parser.at]
        ));
    }
    eval(&expr, vars)
}

/// Whether a constraint holds: its value is truthy.
pub fn holds(text: &str, vars: &HashMap<String, LuaValue>) -> Result<bool, String> {
    evaluate(text, vars).map(|v| v.truthy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, LuaValue> {
        HashMap::from([
            ("a".to_string(), LuaValue::Number(0.2)),
            ("b".to_string(), LuaValue::Number(1.0)),
            ("c".to_string(), LuaValue::Str("bar".into())),
        ])
    }

    #[test]
    fn kurobakos_own_examples_hold() {
        assert_eq!(holds("(a + b) < 2", &vars()), Ok(true));
        assert_eq!(holds("c == \"bar\"", &vars()), Ok(true));
        assert_eq!(holds("c == 'foo'", &vars()), Ok(false));
        assert_eq!(holds("c ~= \"foo\" and a <= 0.2", &vars()), Ok(true));
    }

    #[test]
    fn precedence_and_associativity_follow_lua() {
        let v = |t: &str| evaluate(t, &HashMap::new()).unwrap();
        assert_eq!(v("1 + 2 * 3"), LuaValue::Number(7.0));
        assert_eq!(v("2 ^ 3 ^ 2"), LuaValue::Number(512.0));
        assert_eq!(v("-2 ^ 2"), LuaValue::Number(-4.0));
        assert_eq!(v("7 % 3"), LuaValue::Number(1.0));
        assert_eq!(v("-7 % 3"), LuaValue::Number(2.0));
        assert_eq!(
            v("not nil == true"),
            LuaValue::Bool(true),
            "(not nil) == true"
        );
        assert_eq!(v("1 < 2 == true"), LuaValue::Bool(true));
        assert_eq!(v("nil or 3"), LuaValue::Number(3.0));
        assert_eq!(v("false and x"), LuaValue::Bool(false));
        assert_eq!(v("'a' .. 'b' .. 1"), LuaValue::Str("ab1".into()));
        assert_eq!(v("return 1e-3 < 0.01"), LuaValue::Bool(true));
    }

    #[test]
    fn an_absent_parameter_is_nil() {
        assert_eq!(holds("d == nil", &vars()), Ok(true));
        assert!(holds("d > 1", &vars())
            .unwrap_err()
            .contains("compare nil with number"));
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in ["(a", "a +", "a b", "\"x", "a # b", "1..2x"] {
            assert!(evaluate(bad, &vars()).is_err(), "{bad}");
        }
    }
}
