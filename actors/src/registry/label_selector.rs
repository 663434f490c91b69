//! Label selectors as the apiserver reads them (`k8s.io/apimachinery/pkg/labels.Parse`), so a
//! [filtered view](super::View) matches exactly the objects a `labelSelector=` watch would
//! return: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated
//! and all required.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector, SelectorExt};

/// A selector string that could not be read; names the part that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector {selector:?}: cannot read {part:?}")]
pub struct LabelSelectorError {
    pub selector: String,
    pub part: String,
}

/// Parses `text` into kube's [`Selector`]; the empty string matches everything.
pub fn parse(text: &str) -> Result<Selector, LabelSelectorError> {
    let mut expressions = Vec::new();
    for part in split_top_level(text) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let error = || LabelSelectorError {
            selector: text.to_string(),
            part: part.to_string(),
        };
        expressions.push(parse_requirement(part).ok_or_else(error)?);
    }
    Ok(expressions.into_iter().collect())
}

/// Whether `labels` satisfy `selector` (missing labels are an empty map).
pub fn matches(
    selector: &Selector,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    match labels {
        Some(labels) => selector.matches(labels),
        None => selector.matches(&Default::default()),
    }
}

/// Splits at commas outside parentheses: `a in (x,y),b` is two requirements.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Option<Expression> {
    if let Some(key) = part.strip_prefix('!') {
        return valid_key(key.trim()).map(|k| Expression::DoesNotExist(k.into()));
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (valid_key(key.trim())?, value.trim());
            if value.contains(['=', '!', '(', ')', ' ']) {
                return None;
            }
            return Some(if negated {
                Expression::NotEqual(key.into(), value.into())
            } else {
                Expression::Equal(key.into(), value.into())
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim_start();
        let (negated, set) = if let Some(set) = rest.strip_prefix("notin") {
            (true, set)
        } else if let Some(set) = rest.strip_prefix("in") {
            (false, set)
        } else {
            return None;
        };
        let inner = set.trim().strip_prefix('(')?.strip_suffix(')')?;
        let values: BTreeSet<String> = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let key = valid_key(key)?.to_string();
        return Some(if negated {
            Expression::NotIn(key, values)
        } else {
            Expression::In(key, values)
        });
    }
    valid_key(part).map(|k| Expression::Exists(k.into()))
}

fn valid_key(key: &str) -> Option<&str> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then_some(key)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn should_match_as_the_apiserver_does() {
        let web = labels(&[("app", "web"), ("tier", "a")]);
        let db = labels(&[("app", "db")]);
        let cases = [
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("tier in (a,b)", true, false),
            ("tier notin (a)", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web, db),!missing", true, true),
            ("", true, true),
        ];
        for (text, on_web, on_db) in cases {
            let selector = parse(text).unwrap();
            assert_eq!(matches(&selector, Some(&web)), on_web, "{text} on web");
            assert_eq!(matches(&selector, Some(&db)), on_db, "{text} on db");
        }
    }

    #[test]
    fn should_name_the_part_it_cannot_read() {
        let error = parse("app=web,tier in a").unwrap_err();
        assert_eq!(error.part, "tier in a");
    }
}
