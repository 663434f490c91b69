//! Syntax checks for `label_selector` and `field_selector`, so a malformed selector fails when
//! `clusters.toml` loads instead of as a `400 Bad Request` on the first list.
//!
//! The grammar is apimachinery's (`pkg/labels/selector.go`, `pkg/fields/selector.go`):
//! label requirements `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
//! `key notin (a,b)`, `key>3`, `key<3`; field requirements `key=v`, `key==v`, `key!=v`.
//! Only the syntax is checked here; the selector is passed on verbatim to the apiserver.

use thiserror::Error;

/// Which kind of selector a [`SelectorError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    Label,
    Field,
}

/// A selector that the apiserver would reject, with the offending requirement.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} selector \"{selector}\": requirement \"{requirement}\" {problem}")]
pub struct SelectorError {
    pub kind: SelectorKind,
    pub selector: String,
    pub requirement: String,
    pub problem: String,
}

impl std::fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SelectorKind::Label => "label",
            SelectorKind::Field => "field",
        })
    }
}

/// Checks a label selector's syntax. The empty selector (everything) is valid.
pub fn check_label_selector(selector: &str) -> Result<(), SelectorError> {
    for requirement in split_requirements(selector) {
        check_label_requirement(requirement.trim()).map_err(|problem| SelectorError {
            kind: SelectorKind::Label,
            selector: selector.into(),
            requirement: requirement.trim().into(),
            problem,
        })?;
    }
    Ok(())
}

/// Checks a field selector's syntax. The empty selector (everything) is valid.
pub fn check_field_selector(selector: &str) -> Result<(), SelectorError> {
    for requirement in split_requirements(selector) {
        check_field_requirement(requirement.trim()).map_err(|problem| SelectorError {
            kind: SelectorKind::Field,
            selector: selector.into(),
            requirement: requirement.trim().into(),
            problem,
        })?;
    }
    Ok(())
}

/// Splits on commas outside parentheses; nothing at all for an empty selector.
fn split_requirements(selector: &str) -> Vec<&str> {
    if selector.trim().is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
}

fn check_label_requirement(requirement: &str) -> Result<(), String> {
    if requirement.is_empty() {
        return Err("is empty (stray comma?)".into());
    }
    if let Some(key) = requirement.strip_prefix('!') {
        return check_label_key(key.trim());
    }
    if let Some(open) = requirement.find('(') {
        let head: Vec<&str> = requirement[..open].split_whitespace().collect();
        let [key, operator] = head.as_slice() else {
            return Err("must read `key in (a,b)` or `key notin (a,b)`".into());
        };
        if *operator != "in" && *operator != "notin" {
            return Err(format!(
                "has operator \"{operator}\"; expected `in` or `notin`"
            ));
        }
        check_label_key(key)?;
        let Some(values) = requirement[open + 1..].trim_end().strip_suffix(')') else {
            return Err("misses its closing parenthesis".into());
        };
        if values.trim().is_empty() {
            return Err("needs at least one value inside the parentheses".into());
        }
        return values
            .split(',')
            .try_for_each(|v| check_label_value(v.trim()));
    }
    for operator in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = requirement.split_once(operator) {
            check_label_key(key.trim())?;
            let value = value.trim();
            if operator == ">" || operator == "<" {
                return match value.parse::<i64>() {
                    Ok(_) => Ok(()),
                    Err(_) => Err(format!(
                        "compares with \"{value}\", which is not an integer"
                    )),
                };
            }
            return check_label_value(value.trim_start_matches('='));
        }
    }
    check_label_key(requirement)
}

/// `[prefix/]name`: prefix a DNS subdomain, name 1–63 of `[A-Za-z0-9-_.]` with alphanumeric ends.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| super::resource_ref::is_dns_label(l);
        if prefix.is_empty() || prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Err(format!(
                "has key prefix \"{prefix}\", which is not a lowercase DNS name"
            ));
        }
    }
    if name.is_empty() {
        return Err("has an empty key".into());
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "has key \"{name}\": at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "has value \"{value}\": at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ))
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.len() <= 63
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

fn check_field_requirement(requirement: &str) -> Result<(), String> {
    if requirement.is_empty() {
        return Err("is empty (stray comma?)".into());
    }
    let split = ["!=", "==", "="]
        .iter()
        .find_map(|op| requirement.split_once(op));
    let Some((key, _value)) = split else {
        return Err("has no operator; write `key=value`, `key==value` or `key!=value`".into());
    };
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!(
            "has key \"{key}\"; expected a field path like metadata.name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_accept_every_label_operator() {
        for ok in [
            "",
            "app",
            "!app",
            "app=web",
            "app==web",
            "app!=web",
            "app.kubernetes.io/name=web,tier in (a, b),env notin (prod)",
            "replicas>3",
            "app=",
        ] {
            assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn should_reject_malformed_label_selectors_naming_the_requirement() {
        for bad in [
            "app=web,",
            "tier in (a",
            "tier within (a)",
            "app=we b",
            "-app",
            "x>y",
            "Ex/a=b",
        ] {
            let err = check_label_selector(bad).unwrap_err();
            assert_eq!(err.kind, SelectorKind::Label, "{bad}");
        }
        let err = check_label_selector("app=ok,tier in ()").unwrap_err();
        assert_eq!(err.requirement, "tier in ()");
        assert!(err.to_string().contains("at least one value"));
    }

    #[test]
    fn should_check_field_selectors() {
        assert_eq!(
            check_field_selector("metadata.name=x,status.phase!=Running"),
            Ok(())
        );
        assert_eq!(check_field_selector("spec.nodeName="), Ok(()));
        assert!(check_field_selector("metadata.name").is_err());
        assert!(check_field_selector("=x").is_err());
        assert!(check_field_selector("a=b,,c=d").is_err());
    }
}
