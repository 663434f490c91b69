//! A kube [`Selector`] made ready to test many objects: the lister's filter over a cache.
//!
//! # Contract
//! - [`LabelMatcher::matches`] gives the answer of kube's `SelectorExt::matches` (and so of
//!   apimachinery's `labels.Selector.Matches`) for the same labels: a missing label fails
//!   `=`, `in` and exists, and passes `!=`, `notin` and `!key`.
//! - Labels are read through a lookup (`key → value`), so a compact cache answers from its
//!   interned index and a typed one from its `BTreeMap`, with no map built per object
//!   (building one per object was most of a selective `list` of a compact cache).
//! - The selector is copied once per matcher, not once per object.

use kube::core::{Expression, Selector};

/// A label selector, ready to test objects (see the module docs).
pub(crate) struct LabelMatcher {
    expressions: Vec<Expression>,
}

impl LabelMatcher {
    /// The matcher of `selector`.
    pub(crate) fn new(selector: &Selector) -> Self {
        Self {
            expressions: selector.clone().into_iter().collect(),
        }
    }

    /// Whether every object matches (the empty selector).
    pub(crate) fn selects_all(&self) -> bool {
        self.expressions.is_empty()
    }

    /// A label every match must carry with one of these values (the first `=` or `in`
    /// expression), so candidates can come from a label index instead of a scan.
    pub(crate) fn required_values(&self) -> Option<(&str, Vec<&str>)> {
        self.expressions
            .iter()
            .find_map(|expression| match expression {
                Expression::Equal(key, value) => Some((key.as_str(), vec![value.as_str()])),
                Expression::In(key, values) => {
                    Some((key.as_str(), values.iter().map(String::as_str).collect()))
                }
                _ => None,
            })
    }

    /// Whether the object whose label values `label` looks up matches every expression.
    pub(crate) fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.expressions.iter().all(|expression| match expression {
            Expression::In(key, values) => label(key).is_some_and(|v| values.contains(v)),
            Expression::NotIn(key, values) => label(key).is_none_or(|v| !values.contains(v)),
            Expression::Equal(key, value) => label(key) == Some(value.as_str()),
            Expression::NotEqual(key, value) => label(key) != Some(value.as_str()),
            Expression::Exists(key) => label(key).is_some(),
            Expression::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn should_answer_as_kube_does_for_every_operator() {
        let set = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        let expressions = [
            Expression::In("app".into(), set(&["web", "api"])),
            Expression::NotIn("app".into(), set(&["web"])),
            Expression::Equal("tier".into(), "front".into()),
            Expression::NotEqual("tier".into(), "front".into()),
            Expression::Exists("canary".into()),
            Expression::DoesNotExist("canary".into()),
        ];
        let objects = [
            labels(&[]),
            labels(&[("app", "web")]),
            labels(&[("app", "api"), ("tier", "front")]),
            labels(&[("app", "db"), ("tier", "back"), ("canary", "")]),
        ];
        // Every single expression and every pair, against every object.
        let mut selectors: Vec<Selector> = vec![Selector::default()];
        for (i, a) in expressions.iter().enumerate() {
            selectors.push(a.clone().into());
            for b in &expressions[i + 1..] {
                selectors.push([a.clone(), b.clone()].into_iter().collect());
            }
        }
        for selector in &selectors {
            let matcher = LabelMatcher::new(selector);
            assert_eq!(matcher.selects_all(), selector.selects_all());
            for object in &objects {
                assert_eq!(
                    matcher.matches(|key| object.get(key).map(String::as_str)),
                    selector.matches(object),
                    "selector {selector} on {object:?}"
                );
            }
        }
    }
}
