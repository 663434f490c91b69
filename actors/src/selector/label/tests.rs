//! The cases of apimachinery's `pkg/labels/selector_test.go` (TestSelectorParse,
//! TestLexer, TestLexerSequence, TestSelectorMatches, TestRequirementSelectorMatching,
//! TestSetSelectorParser, TestToString), error texts seen from real servers, and properties.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn values(vs: &[&str]) -> BTreeSet<String> {
    vs.iter().map(|v| v.to_string()).collect()
}

fn requirement(key: &str, op: LabelOp) -> LabelRequirement {
    LabelRequirement {
        key: key.into(),
        op,
    }
}

#[test]
fn good_selectors_parse_and_render_back_without_spaces() {
    for text in [
        "x=a,y=b,z=c",
        "",
        "x!=a,y=b",
        "x=",
        "x= ",
        "x=,z= ",
        "x= ,z= ",
        "!x",
        "x>1",
        "x>1,z<5",
    ] {
        let selector = LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.to_string(), text.replace(' ', ""), "{text}");
    }
}

#[test]
fn bad_selectors_are_rejected() {
    for text in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
        assert!(LabelSelector::parse(text).is_err(), "{text}");
    }
}

#[test]
fn parsing_is_deterministic_whatever_the_order() {
    let a = LabelSelector::parse("x=a,a=x").unwrap();
    let b = LabelSelector::parse("a=x,x=a").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "a=x,x=a");
}

#[test]
fn lexer_returns_the_longest_token() {
    let cases = [
        ("", Token::EndOfString),
        (",", Token::Comma),
        ("notin", Token::NotIn),
        ("in", Token::In),
        ("=", Token::Equals),
        ("==", Token::DoubleEquals),
        (">", Token::GreaterThan),
        ("<", Token::LessThan),
        ("!", Token::DoesNotExist),
        ("!=", Token::NotEquals),
        ("(", Token::OpenPar),
        (")", Token::ClosedPar),
        ("~", Token::Identifier),
        ("||", Token::Identifier),
    ];
    for (text, token) in cases {
        let mut lexer = Lexer { text, pos: 0 };
        assert_eq!(lexer.lex(), (token, text), "{text:?}");
    }
}

#[test]
fn lexer_sequences() {
    use Token::*;
    let cases: &[(&str, &[Token])] = &[
        (
            "key in ( value )",
            &[Identifier, In, OpenPar, Identifier, ClosedPar],
        ),
        (
            "key notin ( value )",
            &[Identifier, NotIn, OpenPar, Identifier, ClosedPar],
        ),
        (
            "key in ( value1, value2 )",
            &[
                Identifier, In, OpenPar, Identifier, Comma, Identifier, ClosedPar,
            ],
        ),
        ("key", &[Identifier]),
        ("!key", &[DoesNotExist, Identifier]),
        ("()", &[OpenPar, ClosedPar]),
        (
            "x in (),y",
            &[Identifier, In, OpenPar, ClosedPar, Comma, Identifier],
        ),
        (
            "== != (), = notin",
            &[
                DoubleEquals,
                NotEquals,
                OpenPar,
                ClosedPar,
                Comma,
                Equals,
                NotIn,
            ],
        ),
        ("key>2", &[Identifier, GreaterThan, Identifier]),
        ("key<1", &[Identifier, LessThan, Identifier]),
    ];
    for (text, expected) in cases {
        let parser = Parser::new(text);
        let tokens: Vec<Token> = parser.items.iter().map(|(t, _)| *t).collect();
        assert_eq!(tokens.last(), Some(&EndOfString));
        assert_eq!(&tokens[..tokens.len() - 1], *expected, "{text}");
    }
}

#[test]
fn selectors_match_as_apimachinery_says() {
    let labelset = set(&[("foo", "bar"), ("baz", "blah")]);
    let cases: &[(&str, BTreeMap<String, String>, bool)] = &[
        ("", set(&[("x", "y")]), true),
        ("x=y", set(&[("x", "y")]), true),
        ("x=y,z=w", set(&[("x", "y"), ("z", "w")]), true),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "a")]), true),
        ("notin=in", set(&[("notin", "in")]), true),
        ("x", set(&[("x", "z")]), true),
        ("!x", set(&[("y", "z")]), true),
        ("x>1", set(&[("x", "2")]), true),
        ("x<1", set(&[("x", "0")]), true),
        ("x=z", set(&[]), false),
        ("x=y", set(&[("x", "z")]), false),
        ("x=y,z=w", set(&[("x", "w"), ("z", "w")]), false),
        ("x!=y,z!=w", set(&[("x", "z"), ("z", "w")]), false),
        ("x", set(&[("y", "z")]), false),
        ("!x", set(&[("x", "z")]), false),
        ("x>1", set(&[("x", "0")]), false),
        ("x<1", set(&[("x", "2")]), false),
        ("foo=bar", labelset.clone(), true),
        ("baz=blah", labelset.clone(), true),
        ("foo=bar,baz=blah", labelset.clone(), true),
        ("foo=blah", labelset.clone(), false),
        ("baz=bar", labelset.clone(), false),
        ("foo=bar,foobar=bar,baz=blah", labelset, false),
        // TestRequirementSelectorMatching
        (
            "x in (foo),y notin (alpha)",
            set(&[("x", "foo"), ("y", "baz")]),
            true,
        ),
        (
            "x in (foo),y in (alpha)",
            set(&[("x", "foo"), ("y", "baz")]),
            false,
        ),
        ("x notin (),y", set(&[("y", "")]), true),
        ("!x,y", set(&[("y", "")]), true),
        ("x notin (),!y", set(&[("y", "")]), false),
        ("x in ()", set(&[("y", "baz")]), false),
        ("z>1", set(&[("z", "2")]), true),
        ("z>1", set(&[("z", "v2")]), false),
        // Beyond apimachinery's table: a missing label is never above or below.
        ("z<1", set(&[]), false),
        ("z>1", set(&[]), false),
    ];
    for (text, labels, expected) in cases {
        let selector = LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(selector.matches(labels), *expected, "{text} on {labels:?}");
    }
}

#[test]
fn set_selector_parser_cases() {
    use LabelOp::*;
    let ok: Vec<(&str, Vec<LabelRequirement>)> = vec![
        ("", vec![]),
        ("\rx", vec![requirement("x", Exists)]),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            vec![requirement(
                "this-is-a-dns.domain.com/key-with-dash",
                Exists,
            )],
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            vec![requirement(
                "this-is-another-dns.domain.com/key-with-dash",
                In(values(&["so", "what"])),
            )],
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            vec![requirement(
                "0.1.2.domain/99",
                NotIn(values(&["10.10.100.1", "tick.tack.clock"])),
            )],
        ),
        (
            "foo  in\t (abc)",
            vec![requirement("foo", In(values(&["abc"])))],
        ),
        (
            "x notin\n (abc)",
            vec![requirement("x", NotIn(values(&["abc"])))],
        ),
        (
            "x  notin\t\t\t(abc,def)",
            vec![requirement("x", NotIn(values(&["abc", "def"])))],
        ),
        (
            "x in (abc,def)",
            vec![requirement("x", In(values(&["abc", "def"])))],
        ),
        (
            "x in (abc,)",
            vec![requirement("x", In(values(&["abc", ""])))],
        ),
        ("x in ()", vec![requirement("x", In(values(&[""])))]),
        (
            "x notin (abc,,def),bar,z in (),w",
            vec![
                requirement("bar", Exists),
                requirement("w", Exists),
                requirement("x", NotIn(values(&["abc", "", "def"]))),
                requirement("z", In(values(&[""]))),
            ],
        ),
        (
            "x,y in (a)",
            vec![
                requirement("x", Exists),
                requirement("y", In(values(&["a"]))),
            ],
        ),
        ("x=a", vec![requirement("x", Equals("a".into()))]),
        ("x>1", vec![requirement("x", GreaterThan(1))]),
        ("x<7", vec![requirement("x", LessThan(7))]),
        (
            "x=a,y!=b",
            vec![
                requirement("x", Equals("a".into())),
                requirement("y", NotEquals("b".into())),
            ],
        ),
        (
            "x=a,y!=b,z in (h,i,j)",
            vec![
                requirement("x", Equals("a".into())),
                requirement("y", NotEquals("b".into())),
                requirement("z", In(values(&["h", "i", "j"]))),
            ],
        ),
        ("x notin ( )", vec![requirement("x", NotIn(values(&[""])))]),
        (
            "x notin (, a)",
            vec![requirement("x", NotIn(values(&["", "a"])))],
        ),
        ("a ", vec![requirement("a", Exists)]),
        (
            "a in (x,y,notin, z,in)",
            vec![requirement(
                "a",
                In(values(&["in", "notin", "x", "y", "z"])),
            )],
        ),
    ];
    for (text, expected) in ok {
        let selector = LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(selector.requirements(), expected.as_slice(), "{text:?}");
    }
    for text in [
        "x=a||y=b",
        "x,,y",
        ",x,y",
        "x nott in (y)",
        "a in (xyz),",
        "a in (xyz)b notin ()",
        "a in (xyz abc)",
        "a notin(",
        "a (",
        "(",
    ] {
        assert!(LabelSelector::parse(text).is_err(), "{text:?}");
    }
}

#[test]
fn renders_the_canonical_form() {
    let cases = [
        (
            "x in (def,abc),y notin (jkl),z",
            "x in (abc,def),y notin (jkl),z",
        ),
        ("x notin (abc,def),y!=jkl,!z", "x notin (abc,def),y!=jkl,!z"),
        (
            "z notin (),y in (mno, jkl),x notin (abc)",
            "x notin (abc),y in (jkl,mno),z notin ()",
        ),
        ("x=abc,y==jkl,z!=a", "x=abc,y=jkl,z!=a"),
        ("x>2,y<8,z", "x>2,y<8,z"),
        ("a in (b,b,a)", "a in (a,b)"),
    ];
    for (text, rendered) in cases {
        assert_eq!(LabelSelector::parse(text).unwrap().to_string(), rendered);
    }
}

/// Messages as kube-apiserver v1.28 answers them (the fixture
/// `status/400-bad-label-selector.json` for the first; the others as kubectl users and
/// apimachinery's own tests quote them).
#[test]
fn errors_carry_the_servers_words() {
    let qualified = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let cases = [
        ("a===b".to_string(), "unable to parse requirement: found '=', expected: identifier".to_string()),
        (
            "app:monolith".into(),
            format!("unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part {qualified}"),
        ),
        (
            "a/b/c ?=? def".into(),
            format!("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name {qualified} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
        ),
        (
            "app.kubernetes_io/name=x".into(),
            "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
        ),
        (
            format!("good-key={}", "z".repeat(64)),
            format!("unable to parse requirement: values[0][good-key]: Invalid value: \"{}\": must be no more than 63 characters", "z".repeat(64)),
        ),
        (
            "x>y".into(),
            "unable to parse requirement: values[0]: Invalid value: \"y\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
        ),
        ("app in web".into(), "unable to parse requirement: found 'web' expected: '('".into()),
        ("a=b c".into(), "found 'c', expected: ',' or 'end of string'".into()),
        ("a=b,".into(), "found '', expected: identifier after ','".into()),
        ("=a".into(), "found '=', expected: !, identifier, or 'end of string'".into()),
        ("a b".into(), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
        ("tier in (a".into(), "unable to parse requirement: found '', expected: ',' or ')'".into()),
        (
            "z>-1".into(),
            "unable to parse requirement: values[0][z]: Invalid value: \"-1\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into(),
        ),
        ("-app".into(), format!("unable to parse requirement: <nil>: Invalid value: \"-app\": name part {qualified}")),
        ("/a".into(), "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".into()),
        (
            "a/".into(),
            format!("unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part {qualified}"),
        ),
    ];
    for (text, message) in cases {
        let error = LabelSelector::parse(&text).expect_err(&text);
        assert_eq!(error.kind, SelectorKind::Label);
        assert_eq!(error.selector, text);
        assert_eq!(error.message, message, "{text:?}");
    }
}

#[test]
fn several_value_errors_aggregate_in_brackets() {
    let error = LabelSelector::parse("x in (-a, b_, c)").unwrap_err();
    let value_rule = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    assert_eq!(
        error.message,
        format!(
            "unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {value_rule}, values[1][x]: Invalid value: \"b_\": {value_rule}]"
        )
    );
}

#[test]
fn go_quotes_control_characters_as_go_does() {
    let error = LabelSelector::parse("a\u{1}b").unwrap_err();
    assert!(
        error
            .message
            .starts_with("unable to parse requirement: <nil>: Invalid value: \"a\\x01b\": "),
        "{}",
        error.message
    );
}

/// The pieces selectors are made of, including the odd ones (empty values, keywords as
/// values, prefixes).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,5}",
        "[a-z]{1,4}\\.[a-z]{2,3}/[A-Za-z0-9]([-A-Za-z0-9_.]{0,4}[A-Za-z0-9])?",
        Just("in".to_string()),
        Just("notin".to_string()),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]([-A-Za-z0-9_.]{0,6}[A-Za-z0-9])?",
        Just(String::new()),
        Just("in".to_string()),
    ]
}

fn op() -> impl Strategy<Value = LabelOp> {
    prop_oneof![
        value().prop_map(LabelOp::Equals),
        value().prop_map(LabelOp::NotEquals),
        prop::collection::btree_set(value(), 1..4).prop_map(LabelOp::In),
        prop::collection::btree_set(value(), 1..4).prop_map(LabelOp::NotIn),
        Just(LabelOp::Exists),
        Just(LabelOp::DoesNotExist),
        (0i64..1000).prop_map(LabelOp::GreaterThan),
        (0i64..1000).prop_map(LabelOp::LessThan),
    ]
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    prop::collection::vec((key(), op()), 0..5).prop_map(|pairs| {
        let mut requirements: Vec<LabelRequirement> = pairs
            .into_iter()
            .map(|(key, op)| LabelRequirement { key, op })
            .collect();
        requirements.sort_by_cached_key(|r| (r.key.clone(), r.to_string()));
        LabelSelector { requirements }
    })
}

proptest! {
    /// What we render, the server (and we) read back as the same selector.
    #[test]
    fn rendering_parses_back_to_the_same_selector(selector in selector()) {
        let text = selector.to_string();
        prop_assert_eq!(LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?, selector, "{}", text);
    }

    /// Anything at all: an answer, never a panic; an accepted selector renders canonically.
    #[test]
    fn any_text_parses_or_fails_without_panicking(text in "[a-z0-9 =!(),<>_./\\-\u{0}\u{e9}]{0,24}") {
        if let Ok(selector) = LabelSelector::parse(&text) {
            let again = LabelSelector::parse(&selector.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&selector), "{}", text);
        }
    }

    /// `key>n` and `key<n` compare as integers, never as strings.
    #[test]
    fn comparisons_are_numeric(label in 0i64..10_000, bound in 0i64..10_000) {
        let labels = set(&[("n", &label.to_string())]);
        let above = LabelSelector::parse(&format!("n>{bound}")).unwrap();
        let below = LabelSelector::parse(&format!("n<{bound}")).unwrap();
        prop_assert_eq!(above.matches(&labels), label > bound);
        prop_assert_eq!(below.matches(&labels), label < bound);
    }
}
