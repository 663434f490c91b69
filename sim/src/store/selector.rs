//! Label and field selectors, parsed and matched as apimachinery's `labels.Parse` and
//! `fields.ParseSelector` do, with the same error wording for the 400 answers.
//!
//! Field selectors only accept the fields the real server indexes for a resource
//! (`metadata.name` and `metadata.namespace` everywhere; a few more for pods and events).
//! Matching reads the object's index ([`StoredObject`]), never its JSON: a selective list
//! or watch over 100k pods parses nothing.

use super::{ResourceType, Status, StoredObject};

/// JSON pointers of every field a field selector may name beyond `metadata.name` and
/// `metadata.namespace`, over all resources; each stored object indexes the ones it has.
/// `field_pointer` only hands out pointers from this list (a test checks it).
pub(crate) const INDEXED_FIELDS: &[&str] = &[
    "/spec/nodeName",
    "/spec/restartPolicy",
    "/spec/schedulerName",
    "/spec/serviceAccountName",
    "/spec/hostNetwork",
    "/spec/unschedulable",
    "/status/phase",
    "/status/podIP",
    "/status/nominatedNodeName",
    "/involvedObject/kind",
    "/involvedObject/namespace",
    "/involvedObject/name",
    "/involvedObject/uid",
    "/involvedObject/apiVersion",
    "/involvedObject/resourceVersion",
    "/involvedObject/fieldPath",
    "/reason",
    "/reportingComponent",
    "/source/component",
    "/type",
];

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    /// `key>n`: the label reads as an integer above `n`.
    GreaterThan(i64),
    /// `key<n`: the label reads as an integer below `n`.
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq)]
struct LabelRequirement {
    key: String,
    op: LabelOp,
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    /// JSON pointer into the object, e.g. `/spec/nodeName`: `/metadata/name`,
    /// `/metadata/namespace` or one of [`INDEXED_FIELDS`].
    pointer: &'static str,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Both selectors of a list or watch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectFilter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl ObjectFilter {
    /// Parses both raw selectors for a resource; errors are the real 400 answers.
    pub fn parse(
        rt: &ResourceType,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<ObjectFilter, Status> {
        Ok(ObjectFilter {
            labels: LabelSelector::parse(label_selector.unwrap_or(""))?,
            fields: FieldSelector::parse(rt, field_selector.unwrap_or(""))?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.requirements.is_empty() && self.fields.requirements.is_empty()
    }

    pub fn matches(&self, object: &StoredObject) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

impl LabelSelector {
    pub fn parse(raw: &str) -> Result<LabelSelector, Status> {
        let tokens = lex(raw)
            .map_err(|e| Status::bad_request(format!("unable to parse requirement: {e}")))?;
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            let requirement = parser
                .requirement()
                .map_err(|e| Status::bad_request(format!("unable to parse requirement: {e}")))?;
            requirements.push(requirement);
            match parser.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(other) => {
                    return Err(Status::bad_request(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        other.literal()
                    )));
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, object: &StoredObject) -> bool {
        self.requirements.iter().all(|r| {
            let value = object.label(&r.key);
            match &r.op {
                LabelOp::Equals(v) => value == Some(v.as_str()),
                LabelOp::NotEquals(v) => value != Some(v.as_str()),
                LabelOp::In(vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
                LabelOp::NotIn(vs) => value.is_none_or(|x| !vs.iter().any(|v| v == x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
                LabelOp::GreaterThan(n) => integer(value).is_some_and(|x| x > *n),
                LabelOp::LessThan(n) => integer(value).is_some_and(|x| x < *n),
            }
        })
    }
}

/// A label value as the server compares it with `>`/`<` (`strconv.ParseInt(v, 10, 64)`).
fn integer(value: Option<&str>) -> Option<i64> {
    value?.parse().ok()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Identifier(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

impl Token {
    fn literal(&self) -> String {
        match self {
            Token::Identifier(s) => s.clone(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::NotEquals => "!=".into(),
            Token::Bang => "!".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::GreaterThan => ">".into(),
            Token::LessThan => "<".into(),
        }
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn lex(raw: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = raw.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            '>' => {
                tokens.push(Token::GreaterThan);
                i += 1;
            }
            '<' => {
                tokens.push(Token::LessThan);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::DoubleEquals);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Equals);
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::NotEquals);
                i += 2;
            }
            '!' => {
                tokens.push(Token::Bang);
                i += 1;
            }
            c if is_identifier_char(c) => {
                let start = i;
                while i < chars.len() && is_identifier_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier(word),
                });
            }
            other => return Err(format!("found '{other}', expected: identifier")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn literal_or_empty(token: Option<&Token>) -> String {
        token.map(Token::literal).unwrap_or_default()
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            let key = self.identifier()?;
            return Ok(LabelRequirement {
                key,
                op: LabelOp::DoesNotExist,
            });
        }
        let key = self.identifier()?;
        let op = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(LabelRequirement {
                    key,
                    op: LabelOp::Exists,
                });
            }
            Some(Token::Equals | Token::DoubleEquals) => {
                self.pos += 1;
                LabelOp::Equals(self.value()?)
            }
            Some(Token::NotEquals) => {
                self.pos += 1;
                LabelOp::NotEquals(self.value()?)
            }
            Some(Token::In) => {
                self.pos += 1;
                LabelOp::In(self.value_set()?)
            }
            Some(Token::NotIn) => {
                self.pos += 1;
                LabelOp::NotIn(self.value_set()?)
            }
            Some(Token::GreaterThan) => {
                self.pos += 1;
                LabelOp::GreaterThan(Self::integer_operand(self.value()?)?)
            }
            Some(Token::LessThan) => {
                self.pos += 1;
                LabelOp::LessThan(Self::integer_operand(self.value()?)?)
            }
            Some(other) => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.literal()
                ));
            }
        };
        Ok(LabelRequirement { key, op })
    }

    /// The operand of `>`/`<`, with apimachinery's `NewRequirement` wording when it is not
    /// an integer.
    fn integer_operand(value: String) -> Result<i64, String> {
        value.parse().map_err(|_| {
            format!(
                "values[0]: Invalid value: {value:?}: for 'Gt', 'Lt' operators, the value must be an integer"
            )
        })
    }

    fn identifier(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Identifier(s)) => Ok(s),
            other => Err(format!(
                "found '{}', expected: identifier",
                Self::literal_or_empty(other.as_ref())
            )),
        }
    }

    /// A value after `=`/`!=`; empty values are allowed (`a=`).
    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            Some(Token::Identifier(_) | Token::In | Token::NotIn) => {
                Ok(self.next().map(|t| t.literal()).unwrap_or_default())
            }
            Some(other) => Err(format!("found '{}', expected: identifier", other.literal())),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Open) => {}
            other => {
                return Err(format!(
                    "found '{}' expected: '('",
                    Self::literal_or_empty(other.as_ref())
                ));
            }
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Token::Close) => return Ok(values),
                Some(Token::Identifier(s)) => {
                    values.push(s);
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => return Ok(values),
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                Self::literal_or_empty(other.as_ref())
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        Self::literal_or_empty(other.as_ref())
                    ));
                }
            }
        }
    }
}

impl FieldSelector {
    pub fn parse(rt: &ResourceType, raw: &str) -> Result<FieldSelector, Status> {
        let mut requirements = Vec::new();
        for term in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(Status::bad_request(format!(
                    "invalid selector: '{raw}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            let pointer = field_pointer(rt, field).ok_or_else(|| unsupported_field(rt, field))?;
            requirements.push(FieldRequirement {
                pointer,
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn matches(&self, object: &StoredObject) -> bool {
        self.requirements
            .iter()
            .all(|r| (object.field(r.pointer) == r.value) == r.equal)
    }
}

/// The JSON pointer behind a selectable field of this resource, if the real server indexes it.
fn field_pointer(rt: &ResourceType, field: &str) -> Option<&'static str> {
    match field {
        "metadata.name" => return Some("/metadata/name"),
        "metadata.namespace" => return Some("/metadata/namespace"),
        _ => {}
    }
    if !selectable_fields(rt).contains(&field) {
        return None;
    }
    let pointer = if field == "source" {
        "/source/component".to_string()
    } else {
        format!("/{}", field.replace('.', "/"))
    };
    INDEXED_FIELDS.iter().copied().find(|p| *p == pointer)
}

/// The fields beyond metadata.name/namespace the real server lets a selector name.
fn selectable_fields(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        _ => &[],
    }
}

fn unsupported_field(rt: &ResourceType, field: &str) -> Status {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods" | "events" | "secrets" | "namespaces" | "nodes") => {
            Status::bad_request(format!("field label not supported: {field}"))
        }
        _ => Status::bad_request(format!(
            "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::registry::builtin_resources;
    use serde_json::{Value, json};

    fn stored(value: Value) -> StoredObject {
        StoredObject::new(&value, 1)
    }

    #[test]
    fn every_selectable_field_is_indexed() {
        for rt in builtin_resources() {
            for field in selectable_fields(&rt) {
                assert!(
                    field_pointer(&rt, field).is_some(),
                    "{}: {field} is selectable but not in INDEXED_FIELDS",
                    rt.plural
                );
            }
        }
    }

    fn rt(plural: &str) -> ResourceType {
        builtin_resources()
            .into_iter()
            .find(|r| r.plural == plural)
            .map(|r| (*r).clone())
            .unwrap()
    }

    #[test]
    fn label_selectors_match_as_kubernetes_defines_them() {
        let pod = stored(json!({"metadata": {"labels": {"app": "web", "tier": "front"}}}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("missing notin (a)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("tier in (back)", false),
        ];
        for (raw, expected) in cases {
            let selector = LabelSelector::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(selector.matches(&pod), expected, "selector {raw:?}");
        }
        let pod = stored(json!({"metadata": {"labels": {"replicas": "5", "tier": "front"}}}));
        let cases = [
            ("replicas>3", true),
            ("replicas>5", false),
            ("replicas<10", true),
            ("replicas < 5", false),
            ("tier>3", false),
            ("missing<3", false),
            ("replicas>3,tier=front", true),
        ];
        for (raw, expected) in cases {
            let selector = LabelSelector::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(selector.matches(&pod), expected, "selector {raw:?}");
        }
    }

    #[test]
    fn label_selector_parse_errors_are_400_with_the_real_wording() {
        let cases = [
            (
                "=x",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            (
                "app in web",
                "unable to parse requirement: found 'web' expected: '('",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            (
                "x>y",
                "unable to parse requirement: values[0]: Invalid value: \"y\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "app@x",
                "unable to parse requirement: found '@', expected: identifier",
            ),
        ];
        for (raw, message) in cases {
            let status = LabelSelector::parse(raw).expect_err(raw);
            assert_eq!(status.code, 400);
            assert_eq!(status.reason, "BadRequest");
            assert_eq!(status.message, message, "selector {raw:?}");
        }
    }

    #[test]
    fn field_selectors_support_per_resource_fields() {
        let pod = stored(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}),
        );
        let pods = rt("pods");
        let cases = [
            ("metadata.name=p", true),
            ("metadata.name==q", false),
            ("metadata.namespace!=ns", false),
            ("spec.nodeName=n1,status.phase=Running", true),
            ("spec.nodeName=", false),
            ("status.podIP=", true),
        ];
        for (raw, expected) in cases {
            let selector = FieldSelector::parse(&pods, raw).unwrap();
            assert_eq!(selector.matches(&pod), expected, "selector {raw:?}");
        }
        let event = stored(json!({"involvedObject": {"kind": "Pod", "name": "p"}}));
        assert!(
            FieldSelector::parse(
                &rt("events"),
                "involvedObject.kind=Pod,involvedObject.name=p"
            )
            .unwrap()
            .matches(&event)
        );
    }

    #[test]
    fn unknown_field_selectors_are_400_with_the_real_wording() {
        let status = FieldSelector::parse(&rt("configmaps"), "data.a=1").unwrap_err();
        assert_eq!(status.code, 400);
        assert_eq!(
            status.message,
            "\"data.a\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert_eq!(
            FieldSelector::parse(&rt("pods"), "spec.bogus=1")
                .unwrap_err()
                .message,
            "field label not supported: spec.bogus"
        );
    }
}
