//! Label selectors: apimachinery's `labels.Parse` (`pkg/labels/selector.go`) — its byte
//! lexer, its recursive-descent parser with the same lookahead quirks, `NewRequirement`'s
//! validation (`util/validation.IsQualifiedName` keys, `IsValidLabelValue` values, integer
//! operands of `>`/`<`) and its error texts, down to the `<nil>:` of a key error.
//!
//! Departure: `==` parses as `=` and renders as `=` (the server treats them alike).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{SelectorError, SelectorKind, go_quote, write_joined};

/// A parsed label selector: every requirement must hold. The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// One requirement on one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// What a requirement asks of its key's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelOp {
    /// `key=value` or `key==value`.
    Equals(String),
    /// `key!=value`: also true when the label is missing.
    NotEquals(String),
    /// `key in (a,b)`.
    In(BTreeSet<String>),
    /// `key notin (a,b)`: also true when the label is missing.
    NotIn(BTreeSet<String>),
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n`: the label exists and reads as an integer above `n`.
    GreaterThan(i64),
    /// `key<n`: the label exists and reads as an integer below `n`.
    LessThan(i64),
}

impl LabelSelector {
    /// Parses `text` as the API server does; the empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(text).parse().map_err(|message| SelectorError {
            kind: SelectorKind::Label,
            selector: text.to_string(),
            message,
        })?;
        // The server sorts by key ("to grant deterministic parsing"); requirements on one
        // key are sorted as rendered too, so that every spelling renders the same.
        requirements.sort_by_cached_key(|r| (r.key.clone(), r.to_string()));
        Ok(Self { requirements })
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key (equal selectors have equal lists).
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl LabelRequirement {
    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label is tested.
    pub fn op(&self) -> &LabelOp {
        &self.op
    }

    /// apimachinery's `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key).map(String::as_str);
        match &self.op {
            LabelOp::Equals(v) => value == Some(v.as_str()),
            LabelOp::In(values) => value.is_some_and(|v| values.contains(v)),
            LabelOp::NotEquals(v) => value != Some(v.as_str()),
            LabelOp::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan(bound) => integer(value).is_some_and(|v| v > *bound),
            LabelOp::LessThan(bound) => integer(value).is_some_and(|v| v < *bound),
        }
    }
}

/// A label's value as Go's `strconv.ParseInt(v, 10, 64)` reads it.
fn integer(value: Option<&str>) -> Option<i64> {
    value?.parse().ok()
}

impl fmt::Display for LabelSelector {
    /// The canonical query string: requirements by key, joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let join = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match &self.op {
            LabelOp::Equals(v) => write!(f, "{key}={v}"),
            LabelOp::NotEquals(v) => write!(f, "{key}!={v}"),
            LabelOp::In(values) => write!(f, "{key} in ({})", join(values)),
            LabelOp::NotIn(values) => write!(f, "{key} notin ({})", join(values)),
            LabelOp::Exists => write!(f, "{key}"),
            LabelOp::DoesNotExist => write!(f, "!{key}"),
            LabelOp::GreaterThan(n) => write!(f, "{key}>{n}"),
            LabelOp::LessThan(n) => write!(f, "{key}<{n}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// apimachinery's `string2token`: the literals that are tokens of their own.
fn literal_token(literal: &[u8]) -> Option<Token> {
    Some(match literal {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// The byte lexer. Like Go's, `read` answers 0 at the end, so a NUL byte ends a token too.
/// Every token boundary is an ASCII byte, so literals are slices of the input on char
/// boundaries.
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn read(&mut self) -> u8 {
        match self.text.as_bytes().get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Token, &'a str) {
        let mut b = self.read();
        while is_whitespace(b) {
            b = self.read();
        }
        if b == 0 {
            return (Token::EndOfString, "");
        }
        self.unread();
        if is_special_symbol(b) {
            self.scan_special_symbol()
        } else {
            self.scan_identifier_or_keyword()
        }
    }

    fn scan_identifier_or_keyword(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let end = loop {
            let b = self.read();
            if b == 0 {
                // A NUL byte was consumed; the end of input was not.
                break if self.pos > start && self.text.as_bytes()[self.pos - 1] == 0 {
                    self.pos - 1
                } else {
                    self.pos
                };
            }
            if is_special_symbol(b) || is_whitespace(b) {
                self.unread();
                break self.pos;
            }
        };
        let literal = &self.text[start..end];
        let token = literal_token(literal.as_bytes()).unwrap_or(Token::Identifier);
        (token, literal)
    }

    /// The longest run of special symbols that is still a token (`!=` over `!`).
    fn scan_special_symbol(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let mut last: Option<(Token, usize)> = None;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if !is_special_symbol(b) {
                self.unread();
                break;
            }
            match literal_token(&self.text.as_bytes()[start..self.pos]) {
                Some(token) => last = Some((token, self.pos)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        // Every single special symbol is a token, so `last` is always set here.
        let (token, end) = last.unwrap_or((Token::EndOfString, start));
        (token, &self.text[start..end])
    }
}

/// Whether `in`/`notin` are operators (after a key) or plain values.
#[derive(Clone, Copy)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        let mut lexer = Lexer { text, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.0 == Token::EndOfString {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self
            .items
            .get(self.position)
            .copied()
            .unwrap_or((Token::EndOfString, ""));
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, unary) = self.key_and_inferred_operator()?;
        if let Some(op) = unary {
            return Ok(LabelRequirement { key, op });
        }
        let operator = self.operator()?;
        let values = match operator {
            Token::In | Token::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    /// The key, and `Exists`/`DoesNotExist` when nothing but a comma or the end follows.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<LabelOp>), String> {
        let (mut token, mut literal) = self.consume(Context::Values);
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let problems = qualified_name_problems(literal);
        if !problems.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(literal),
                problems.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Context::Values);
        let unary = if negated {
            Some(LabelOp::DoesNotExist)
        } else if matches!(next, Token::EndOfString | Token::Comma) {
            Some(LabelOp::Exists)
        } else {
            None
        };
        Ok((literal.to_string(), unary))
    }

    fn operator(&mut self) -> Result<Token, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        match token {
            Token::In
            | Token::Equals
            | Token::DoubleEquals
            | Token::GreaterThan
            | Token::LessThan
            | Token::NotIn
            | Token::NotEquals => Ok(token),
            _ => Err(format!(
                "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
            )),
        }
    }

    /// `(a,b)`; `()` and empty places between commas are the empty value.
    fn value_set(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    // Go names the token that opened the list here, not the one found.
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn identifiers(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal.to_string());
                    let (next, literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `!=`, `>`, `<`; nothing before a comma or the end is `""`.
    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(
            self.lookahead(Context::Values).0,
            Token::EndOfString | Token::Comma
        ) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Context::Values) {
            (Token::Identifier, literal) => Ok(BTreeSet::from([literal.to_string()])),
            (_, literal) => Err(format!("found '{literal}', expected: identifier")),
        }
    }
}

/// apimachinery's `NewRequirement` for a binary operator: the values' checks, in its order,
/// aggregated as `errors.NewAggregate` prints them.
fn new_requirement(
    key: String,
    operator: Token,
    values: BTreeSet<String>,
) -> Result<LabelRequirement, String> {
    let mut errors: Vec<String> = Vec::new();
    let comparison = matches!(operator, Token::GreaterThan | Token::LessThan);
    let mut bound = None;
    if comparison {
        for (i, value) in values.iter().enumerate() {
            match value.parse::<i64>() {
                Ok(n) => bound = Some(n),
                Err(_) => errors.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(value)
                )),
            }
        }
    }
    for (i, value) in values.iter().enumerate() {
        let problems = label_value_problems(value);
        if !problems.is_empty() {
            errors.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(value),
                problems.join("; ")
            ));
        }
    }
    if !errors.is_empty() {
        return Err(aggregate(errors));
    }
    let single = || values.iter().next().cloned().unwrap_or_default();
    let op = match (operator, bound) {
        (Token::In, _) => LabelOp::In(values),
        (Token::NotIn, _) => LabelOp::NotIn(values),
        (Token::NotEquals, _) => LabelOp::NotEquals(single()),
        (Token::GreaterThan, Some(n)) => LabelOp::GreaterThan(n),
        (Token::LessThan, Some(n)) => LabelOp::LessThan(n),
        _ => LabelOp::Equals(single()),
    };
    Ok(LabelRequirement { key, op })
}

/// `utilerrors.NewAggregate(...).Error()`: one message alone, several deduplicated in
/// brackets.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `validation.RegexError`.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        examples.join(" or ")
    )
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let end_ok =
            |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        end_ok(b.first())
            && end_ok(b.last())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

/// `validation.IsQualifiedName`: what is wrong with a label key (empty when nothing).
fn qualified_name_problems(key: &str) -> Vec<String> {
    let name_example = ["MyName", "my.name", "123-abc"];
    let mut problems = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    problems.push(format!("prefix part {}", max_len_error(253)));
                }
                if !is_dns1123_subdomain(prefix) {
                    problems.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &name_example)
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        problems.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        problems.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &name_example)
        ));
    }
    problems
}

/// `validation.IsValidLabelValue`.
fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push(max_len_error(63));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    problems
}

#[cfg(test)]
mod tests;
