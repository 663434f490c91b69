//! The cases of apimachinery's `pkg/fields/selector_test.go` (TestSplitTerms, TestSplitTerm,
//! TestEscapeValue, TestSelectorParse, TestSelectorMatches), the fixture's 400, and
//! properties.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[test]
fn splits_terms_at_unescaped_commas() {
    let cases: &[(&str, &[&str])] = &[
        ("a", &["a"]),
        ("a=avalue", &["a=avalue"]),
        ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
        (
            "a=avalue,b==bvalue,c!=cvalue",
            &["a=avalue", "b==bvalue", "c!=cvalue"],
        ),
        ("", &[]),
        ("a=a,", &["a=a", ""]),
        (",a=a", &["", "a=a"]),
        (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
        (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
        (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
        (r"k=\a\b\", &[r"k=\a\b\"]),
        (r"k=\", &[r"k=\"]),
        ("함=수,목=록", &["함=수", "목=록"]),
    ];
    for (text, terms) in cases {
        assert_eq!(split_terms(text), *terms, "{text}");
    }
}

#[test]
fn splits_a_term_at_its_first_operator() {
    let cases = [
        ("a=value", Some(("a", FieldOp::Equals, "value"))),
        ("b==value", Some(("b", FieldOp::Equals, "value"))),
        ("c!=value", Some(("c", FieldOp::NotEquals, "value"))),
        ("", None),
        ("a", None),
        (r"k=\,", Some(("k", FieldOp::Equals, r"\,"))),
        (r"k=\=", Some(("k", FieldOp::Equals, r"\="))),
        (
            r"k=\\\a\b\=\,\",
            Some(("k", FieldOp::Equals, r"\\\a\b\=\,\")),
        ),
        ("함=수", Some(("함", FieldOp::Equals, "수"))),
    ];
    for (term, expected) in cases {
        assert_eq!(split_term(term), expected, "{term}");
    }
}

#[test]
fn escapes_and_unescapes_values() {
    for (plain, escaped) in [
        ("", ""),
        ("a", "a"),
        ("=", r"\="),
        (",", r"\,"),
        (r"\", r"\\"),
        (r"\=\,\", r"\\\=\\\,\\"),
    ] {
        assert_eq!(escape_value(plain), escaped);
        assert_eq!(unescape_value(escaped).as_deref(), Ok(plain));
    }
    for invalid in [r"\", r"\\\", r"\a"] {
        let error = unescape_value(invalid).unwrap_err();
        assert!(
            error.contains("invalid escape sequence"),
            "{invalid}: {error}"
        );
    }
}

#[test]
fn good_selectors_render_back_and_bad_ones_fail() {
    for text in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
        let selector = FieldSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.to_string(), text);
    }
    for text in [
        "x=a||y=b",
        "x==a==b",
        "x=a,b",
        "x in (a)",
        "x in (a,b,c)",
        "x",
    ] {
        assert!(FieldSelector::parse(text).is_err(), "{text}");
    }
    assert_eq!(
        FieldSelector::parse("x=a,a=x").unwrap(),
        FieldSelector::parse("a=x,x=a").unwrap()
    );
}

#[test]
fn selectors_match_as_apimachinery_says() {
    let fieldset: BTreeMap<&str, &str> =
        [("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")].into();
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Fields, bool)] = &[
        ("", &[("x", "y")], true),
        ("x=y", &[("x", "y")], true),
        ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
        ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
        ("notin=in", &[("notin", "in")], true),
        ("x=y", &[("x", "z")], false),
        ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
        ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
        // A missing field reads as "".
        ("x=", &[], true),
        ("x!=", &[], false),
    ];
    for (text, fields, expected) in cases {
        let fields: BTreeMap<&str, &str> = fields.iter().copied().collect();
        let selector = FieldSelector::parse(text).unwrap();
        assert_eq!(
            selector.matches(|f| fields.get(f).copied()),
            *expected,
            "{text}"
        );
    }
    for (text, expected) in [
        ("foo=bar", true),
        ("baz=blah", true),
        ("foo=bar,baz=blah", true),
        (r"foo=bar,baz=blah,complex=\=value\\\,\\", true),
        ("foo=blah", false),
        ("baz=bar", false),
        ("foo=bar,foobar=bar,baz=blah", false),
    ] {
        let selector = FieldSelector::parse(text).unwrap();
        assert_eq!(
            selector.matches(|f| fieldset.get(f).copied()),
            expected,
            "{text}"
        );
    }
}

#[test]
fn errors_carry_the_servers_words() {
    let cases = [
        (
            "status.phase",
            "invalid selector: 'status.phase'; can't understand 'status.phase'",
        ),
        ("a=1,b", "invalid selector: 'a=1,b'; can't understand 'b'"),
        (
            "x=a||y=b",
            "invalid field selector: unescaped character in value: 61",
        ),
        ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
        (
            r"x=\a",
            r"invalid field selector: invalid escape sequence: \a",
        ),
        (
            r"x=a\",
            r"invalid field selector: invalid escape sequence: \",
        ),
    ];
    for (text, message) in cases {
        let error = FieldSelector::parse(text).expect_err(text);
        assert_eq!(error.kind, SelectorKind::Field);
        assert_eq!(error.message, message, "{text}");
    }
    // Empty terms are skipped, and an unknown field is the server's business, not syntax.
    assert!(FieldSelector::parse("a=b,,c=d").is_ok());
    assert!(FieldSelector::parse("data.a=1").is_ok());
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z.]{0,12}"
}

fn value() -> impl Strategy<Value = String> {
    "[a-z0-9=,\\\\ !\u{e9}-]{0,8}"
}

fn selector() -> impl Strategy<Value = FieldSelector> {
    let op = prop_oneof![Just(FieldOp::Equals), Just(FieldOp::NotEquals)];
    prop::collection::vec((field_name(), op, value()), 0..4).prop_map(|terms| {
        let mut requirements: Vec<FieldRequirement> = terms
            .into_iter()
            .map(|(field, op, value)| FieldRequirement { field, op, value })
            .collect();
        requirements.sort_by_cached_key(FieldRequirement::to_string);
        FieldSelector { requirements }
    })
}

proptest! {
    /// Any value, however many commas, equals signs and backslashes, survives rendering.
    #[test]
    fn rendering_parses_back_to_the_same_selector(selector in selector()) {
        let text = selector.to_string();
        prop_assert_eq!(FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?, selector, "{}", text);
    }

    #[test]
    fn any_text_parses_or_fails_without_panicking(text in "[a-z.=!,\\\\ \u{e9}]{0,24}") {
        if let Ok(selector) = FieldSelector::parse(&text) {
            let again = FieldSelector::parse(&selector.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&selector), "{}", text);
        }
    }
}
