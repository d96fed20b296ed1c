//! The arithmetic the original allows in `capability_config.yaml` (`memory: ram + swap_size`,
//! `shm_rate: ram / (ram + swap_size)`). The original evaluated these with Python; here they
//! are parsed into a tree once, with `+ - * /`, parentheses, numbers, and the names of the
//! host's plain quantities, and evaluated after the whole `max:` section is read.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::model::ranges::{EXPRESSION_BYTES, EXPRESSION_DEPTH};

/// The names an expression may use: the host quantities that are plain numbers.
pub const NAMES: [&str; 6] = ["cpus", "ram", "swap_size", "gpus", "backup_space", "work_space"];

#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Number(f64),
    Name(String),
    Negate(Box<Expression>),
    Binary(Box<Expression>, Operator, Box<Expression>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl Expression {
    pub fn parse(text: &str) -> Result<Expression, String> {
        // The parser recurses once per parenthesis or sign: a damaged file's 100 KB of `(`
        // would overflow the stack.
        if text.len() > EXPRESSION_BYTES {
            return Err(format!("the expression is {} bytes long; at most {EXPRESSION_BYTES} are allowed", text.len()));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens: &tokens, position: 0, depth: 0 };
        let expression = parser.sum()?;
        match parser.tokens.get(parser.position) {
            None => Ok(expression),
            Some(token) => Err(format!("unexpected {token} in {}", crate::error::quoted(text))),
        }
    }

    /// Evaluates with `lookup` giving each name's value.
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> f64) -> Result<f64, String> {
        Ok(match self {
            Expression::Number(value) => *value,
            Expression::Name(name) => lookup(name),
            Expression::Negate(inner) => -inner.evaluate(lookup)?,
            Expression::Binary(left, operator, right) => {
                let (left, right) = (left.evaluate(lookup)?, right.evaluate(lookup)?);
                match operator {
                    Operator::Add => left + right,
                    Operator::Subtract => left - right,
                    Operator::Multiply => left * right,
                    Operator::Divide if right == 0.0 => return Err("division by zero".to_string()),
                    Operator::Divide => left / right,
                }
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Name(String),
    Symbol(char),
}

impl fmt::Display for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(value) => write!(formatter, "number {value}"),
            Token::Name(name) => write!(formatter, "name {name:?}"),
            Token::Symbol(symbol) => write!(formatter, "'{symbol}'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let characters: Vec<char> = text.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        if character.is_whitespace() {
            index += 1;
        } else if "+-*/()".contains(character) {
            tokens.push(Token::Symbol(character));
            index += 1;
        } else if character.is_ascii_digit() || character == '.' {
            let start = index;
            while index < characters.len() && (characters[index].is_ascii_digit() || characters[index] == '.') {
                index += 1;
            }
            let literal: String = characters[start..index].iter().collect();
            let value = literal.parse().map_err(|_| format!("{} is not a number", crate::error::quoted(&literal)))?;
            tokens.push(Token::Number(value));
        } else if character.is_ascii_alphabetic() || character == '_' {
            let start = index;
            while index < characters.len() && (characters[index].is_ascii_alphanumeric() || characters[index] == '_') {
                index += 1;
            }
            let name: String = characters[start..index].iter().collect();
            if !NAMES.contains(&name.as_str()) {
                return Err(format!(
                    "unknown name {} (expected one of {})",
                    crate::error::quoted(&name),
                    NAMES.join(", ")
                ));
            }
            tokens.push(Token::Name(name));
        } else {
            return Err(format!("unexpected character {character:?}"));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [Token],
    position: usize,
    /// How many parentheses and signs enclose the factor being read.
    depth: usize,
}

impl Parser<'_> {
    fn next_symbol_in(&mut self, symbols: &str) -> Option<char> {
        match self.tokens.get(self.position) {
            Some(Token::Symbol(symbol)) if symbols.contains(*symbol) => {
                self.position += 1;
                Some(*symbol)
            }
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<Expression, String> {
        let mut expression = self.product()?;
        while let Some(symbol) = self.next_symbol_in("+-") {
            let operator = if symbol == '+' { Operator::Add } else { Operator::Subtract };
            expression = Expression::Binary(Box::new(expression), operator, Box::new(self.product()?));
        }
        Ok(expression)
    }

    fn product(&mut self) -> Result<Expression, String> {
        let mut expression = self.factor()?;
        while let Some(symbol) = self.next_symbol_in("*/") {
            let operator = if symbol == '*' { Operator::Multiply } else { Operator::Divide };
            expression = Expression::Binary(Box::new(expression), operator, Box::new(self.factor()?));
        }
        Ok(expression)
    }

    fn factor(&mut self) -> Result<Expression, String> {
        if self.depth >= EXPRESSION_DEPTH {
            return Err(format!("parentheses and signs nest more than {EXPRESSION_DEPTH} deep"));
        }
        if self.next_symbol_in("-").is_some() {
            self.depth += 1;
            let inner = self.factor();
            self.depth -= 1;
            return Ok(Expression::Negate(Box::new(inner?)));
        }
        if self.next_symbol_in("(").is_some() {
            self.depth += 1;
            let inner = self.sum();
            self.depth -= 1;
            let inner = inner?;
            return match self.next_symbol_in(")") {
                Some(_) => Ok(inner),
                None => Err("missing ')'".to_string()),
            };
        }
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        match token {
            Some(Token::Number(value)) => Ok(Expression::Number(value)),
            Some(Token::Name(name)) => Ok(Expression::Name(name)),
            Some(other) => Err(format!("unexpected {other}")),
            None => Err("the expression ends too early".to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExpressionVisitor;
        impl Visitor<'_> for ExpressionVisitor {
            type Value = Expression;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a number or an expression such as \"ram + swap_size\"")
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Expression, E> {
                Ok(Expression::Number(value as f64))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Expression, E> {
                Ok(Expression::Number(value as f64))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Expression, E> {
                Ok(Expression::Number(value))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Expression, E> {
                Expression::parse(value).map_err(|reason| {
                    E::custom(format!("expected a number or an expression such as \"ram + swap_size\": {reason}"))
                })
            }
        }
        deserializer.deserialize_any(ExpressionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> f64 {
        match name {
            "ram" => 30.0,
            "swap_size" => 10.0,
            _ => 0.0,
        }
    }

    #[test]
    fn evaluates_the_originals_expressions() {
        assert_eq!(Expression::parse("ram + swap_size").unwrap().evaluate(&host), Ok(40.0));
        assert_eq!(Expression::parse("ram / (ram + swap_size)").unwrap().evaluate(&host), Ok(0.75));
        assert_eq!(Expression::parse("-ram * 2 - 1").unwrap().evaluate(&host), Ok(-61.0));
    }

    #[test]
    fn rejects_unknown_names_and_broken_syntax() {
        assert!(Expression::parse("ram + memory").unwrap_err().contains("unknown name"));
        assert!(Expression::parse("(ram + 1").is_err());
        assert!(Expression::parse("ram +").is_err());
        assert!(Expression::parse("ram ram").is_err());
        assert!(Expression::parse("__import__('os')").is_err());
        assert_eq!(
            Expression::parse("ram / (swap_size - 10)").unwrap().evaluate(&host),
            Err("division by zero".into())
        );
    }

    #[test]
    fn a_huge_or_deeply_nested_expression_is_refused_not_overflowing_the_stack() {
        let deep = format!("{}ram{}", "(".repeat(50_000), ")".repeat(50_000));
        assert!(Expression::parse(&deep).unwrap_err().contains("at most 256"));
        let signs = format!("{}ram", "-".repeat(200));
        assert!(Expression::parse(&signs).unwrap_err().contains("nest more than 16"));
        let nested = format!("{}ram{}", "(".repeat(17), ")".repeat(17));
        assert!(Expression::parse(&nested).unwrap_err().contains("nest more than 16"));
        let fine = format!("{}ram{}", "(".repeat(15), ")".repeat(15));
        assert_eq!(Expression::parse(&fine).unwrap().evaluate(&host), Ok(30.0));
    }
}
