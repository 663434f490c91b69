//! Field selectors: apimachinery's `fields.ParseSelector` (`pkg/fields/selector.go`) —
//! terms split at unescaped commas and sorted, each split at its first `!=`, `==` or `=`,
//! values unescaped (`\\`, `\,`, `\=`), with its error texts.
//!
//! The grammar does not know which fields exist: the server answers an unknown one with its
//! own 400 (`field label not supported: …`), and which fields a client can read locally is
//! the caller's to say (see [`super::METADATA_FIELDS`]).

use std::fmt;

use super::{SelectorError, SelectorKind, write_joined};

/// A parsed field selector: every requirement must hold. The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// `field=value` (or `==`) and `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    field: String,
    op: FieldOp,
    value: String,
}

/// How a [`FieldRequirement`] compares its field with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

impl FieldSelector {
    /// Parses `text` as the API server does; the empty string selects everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |message: String| SelectorError {
            kind: SelectorKind::Field,
            selector: text.to_string(),
            message,
        };
        let mut terms = split_terms(text);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, op, raw_value)) = split_term(term) else {
                return Err(error(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_value(raw_value).map_err(error)?,
            });
        }
        // The written terms were sorted so that the first bad one is the server's; the
        // parsed ones are sorted as rendered, so that every spelling renders the same.
        requirements.sort_by_cached_key(FieldRequirement::to_string);
        Ok(Self { requirements })
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted (equal selectors have equal lists).
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The fields the requirements read, in order (with repeats).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// Whether every requirement holds; `get` reads a field, `None` reading as `""`.
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| {
            let equal = get(&r.field).unwrap_or_default() == r.value;
            equal == (r.op == FieldOp::Equals)
        })
    }
}

impl FieldRequirement {
    /// The field path (`metadata.name`, `status.phase`, ...).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// How it compares.
    pub fn op(&self) -> FieldOp {
        self.op
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical query string: sorted terms, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// `fields.EscapeValue`.
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`, with its error texts (a rune prints as its number, as Go's `%v`).
fn unescape_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Splits at commas not escaped by a backslash; nothing at all for `""`.
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&text[start..i]);
            start = i + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits at the first operator, trying `!=`, then `==`, then `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (symbol, op) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(symbol) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
