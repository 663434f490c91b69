//! Checks for `label_selector` and `field_selector`, so a selector the API server would
//! refuse fails when `clusters.toml` loads (at its file, line and key, through
//! [`ConfigError::Selector`](super::ConfigError::Selector)) instead of as a `400 Bad Request`
//! on the first list.
//!
//! The grammar is the project's one ([`panoptes_actors::selector`], apimachinery's), so the
//! file accepts exactly what the server and the registry's views accept, and the message is
//! the server's own. One check beyond the grammar: a field selector must name a field path
//! (non-empty, no whitespace) — the grammar takes any text there, and every server answers
//! such a field with "not supported".

use panoptes_actors::selector::{FieldSelector, LabelSelector};
pub use panoptes_actors::selector::{SelectorError, SelectorKind};

/// Checks a label selector. The empty selector (everything) is valid.
pub fn check_label_selector(selector: &str) -> Result<(), SelectorError> {
    LabelSelector::parse(selector).map(drop)
}

/// Checks a field selector. The empty selector (everything) is valid.
pub fn check_field_selector(selector: &str) -> Result<(), SelectorError> {
    let parsed = FieldSelector::parse(selector)?;
    match parsed
        .fields()
        .find(|f| f.is_empty() || f.contains(char::is_whitespace))
    {
        Some(field) => Err(SelectorError {
            kind: SelectorKind::Field,
            selector: selector.to_string(),
            message: format!(
                "field {field:?} is not a field path like metadata.name; the server would not support it"
            ),
        }),
        None => Ok(()),
    }
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
            "replicas<3",
            "app=",
        ] {
            assert_eq!(check_label_selector(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn should_reject_malformed_label_selectors_with_the_servers_message() {
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
            assert_eq!(err.selector, bad);
        }
        let err = check_label_selector("app=ok,tier in (a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "label selector \"app=ok,tier in (a\": unable to parse requirement: found '', expected: ',' or ')'"
        );
    }

    #[test]
    fn should_check_field_selectors() {
        assert_eq!(
            check_field_selector("metadata.name=x,status.phase!=Running"),
            Ok(())
        );
        assert_eq!(check_field_selector("spec.nodeName="), Ok(()));
        assert_eq!(
            check_field_selector("a=b,,c=d"),
            Ok(()),
            "empty terms are skipped"
        );
        assert_eq!(check_field_selector(r"metadata.name=a\,b"), Ok(()));
        let err = check_field_selector("metadata.name").unwrap_err();
        assert!(
            err.message.contains("can't understand 'metadata.name'"),
            "{err}"
        );
        let err = check_field_selector("=x").unwrap_err();
        assert!(err.message.contains("not a field path"), "{err}");
        let err = check_field_selector("metadata.name=a,b").unwrap_err();
        assert!(err.message.contains("can't understand 'b'"), "{err}");
    }
}
