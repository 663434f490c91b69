//! Property tests: bytes from a server are untrusted. The managedFields skipping decoder, the
//! list-page decoder and the watch-frame splitter get random and adversarial input (duplicate keys,
//! deep nesting, escapes, truncation, huge strings, stray bytes) and must never panic and
//! must agree with plain serde decoding once managedFields are removed.

use bytes::BytesMut;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::list_watch::{LineSplitter, decode_page_with};
use panoptes_actors::managed_fields::{Document, ManagedFields, from_str};
use panoptes_actors::quarantine::BadInput;
use proptest::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Keys that give the skipping decoder's roles something to find, and some that do not.
const KEYS: &[&str] = &[
    "metadata",
    "managedFields",
    "items",
    "object",
    "name",
    "namespace",
    "spec",
    "managed\\u0046ields",
    "a\\\"b",
];

fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,8}".prop_map(|s| format!("\"{s}\"")),
        Just(r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00""#.to_owned()),
        Just(r#""managedFields\"" "#.to_owned()),
        // Not valid JSON: a raw control character and a bad escape.
        Just("\"a\u{1}b\"".to_owned()),
        Just(r#""\x""#.to_owned()),
        (1usize..4).prop_map(|n| format!("\"{}\"", "h".repeat(n * 40_000))),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1.5e3".to_owned()),
        Just("-0".to_owned()),
        Just("01".to_owned()),
        string_literal(),
    ]
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\n\t ")]
}

/// JSON text (sometimes not quite JSON), with duplicate keys and odd spacing.
fn json_text() -> impl Strategy<Value = String> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (prop::sample::select(KEYS), whitespace(), inner.clone()),
                0..6,
            )
            .prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, ws, v)| format!("\"{k}\"{ws}:{ws}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Nesting deeper than serde_json accepts, inside or outside managedFields.
fn deep(depth: usize, inside_managed_fields: bool) -> String {
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    if inside_managed_fields {
        format!(r#"{{"metadata":{{"name":"a","managedFields":{nested}}}}}"#)
    } else {
        format!(r#"{{"metadata":{{"managedFields":[]}},"spec":{nested}}}"#)
    }
}

/// Adversarial variants of `text`: as is, truncated, or with a stray byte.
fn mangled(text: String) -> impl Strategy<Value = Vec<u8>> {
    let len = text.len();
    prop_oneof![
        3 => Just(text.clone().into_bytes()),
        1 => (0..=len).prop_map({
            let text = text.clone();
            move |at| text.as_bytes()[..at].to_vec()
        }),
        1 => (0..=len, prop::sample::select(&[b',', b'}', b']', b'"', b'\\', b':', 0xff][..]))
            .prop_map(move |(at, byte)| {
                let mut bytes = text.clone().into_bytes();
                bytes.insert(at, byte);
                bytes
            }),
    ]
}

/// A metadata object whose members often repeat (`managedFields` twice, escaped or not).
fn metadata_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(&["managedFields", "name", "managed\\u0046ields"][..]);
    prop::collection::vec((key, whitespace(), json_text()), 0..4).prop_map(|members| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(k, ws, v)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    let meta = prop_oneof![metadata_text(), json_text()];
    let shaped = (meta.clone(), json_text(), meta).prop_map(|(meta, item, object)| {
        format!(
            r#"{{"metadata":{meta},"items":[{{"metadata":{meta}}},{item}],"object":{{"metadata":{object}}}}}"#
        )
    });
    let deep = (118usize..135, any::<bool>()).prop_map(|(d, inside)| deep(d, inside));
    prop_oneof![4 => shaped, 3 => json_text(), 1 => deep].prop_flat_map(mangled)
}

/// `metadata.managedFields` removed where the decoder skips them for `document`: the
/// object's, each list item's, or a watch event object's.
fn without_managed_fields(mut value: Value, document: Document) -> Value {
    fn drop_in(object: Option<&mut Value>) {
        if let Some(Value::Object(meta)) = object.and_then(|o| o.get_mut("metadata")) {
            meta.remove("managedFields");
        }
    }
    match document {
        Document::Object => drop_in(Some(&mut value)),
        Document::WatchEvent => drop_in(value.get_mut("object")),
        Document::ListPage => {
            if let Some(Value::Array(items)) = value.get_mut("items") {
                items.iter_mut().for_each(|item| drop_in(Some(item)));
            }
        }
    }
    value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn skipping_never_panics_and_agrees_with_serde(bytes in document()) {
        // Decoders refuse text that is not UTF-8 before it reaches `from_str`.
        let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
        for document in [Document::Object, Document::WatchEvent, Document::ListPage] {
            let ours = from_str::<Value>(text, ManagedFields::Drop, document);
            let serde = serde_json::from_str::<Value>(text)
                .map(|value| without_managed_fields(value, document));
            match (ours, serde) {
                // serde_json skims a skipped value without recursing, so nesting too deep to
                // decode is no fault there: what follows it decides.
                (_, Err(serde)) if serde.to_string().starts_with("recursion limit exceeded") => {}
                (Ok(ours), Ok(serde)) => prop_assert_eq!(ours, serde),
                // Same kind of fault (serde_json's skim may place it a column apart).
                (Err(ours), Err(serde)) => prop_assert_eq!(ours.classify(), serde.classify()),
                (Ok(_), Err(serde)) => prop_assert!(false, "{:?}: accepted: {}", document, serde),
                (Err(ours), Ok(_)) => prop_assert!(false, "{:?}: refused: {}", document, ours),
            }
        }
    }
}

fn pod_text() -> impl Strategy<Value = String> {
    let name = "[a-c]{1,2}";
    let managed = prop_oneof![
        Just(String::new()),
        Just(r#","managedFields":[{"manager":"m","fieldsV1":{"f:a":{}}}]"#.to_owned()),
        Just(r#","managedFields":[],"managedFields":[{"manager":"x"}]"#.to_owned()),
        json_text().prop_map(|v| format!(r#","managedFields":{v}"#)),
    ];
    let spec = prop_oneof![
        Just(String::new()),
        Just(r#","spec":{"containers":[{"name":"c","image":"i"}]}"#.to_owned()),
        Just(r#","spec":{"containers":"wrong type"}"#.to_owned()),
        Just(r#","kind":"Secret""#.to_owned()),
        json_text().prop_map(|v| format!(r#","spec":{v}"#)),
    ];
    (name, managed, spec).prop_map(|(name, managed, spec)| {
        format!(r#"{{"metadata":{{"name":"{name}","namespace":"ns"{managed}}}{spec}}}"#)
    })
}

fn page_bytes() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(pod_text(), 0..6), any::<bool>())
        .prop_map(|(items, twice)| {
            let items = items.join(",");
            let duplicate = if twice { r#""items":[{"bad":1}],"# } else { "" };
            format!(r#"{{"kind":"PodList","metadata":{{"resourceVersion":"7"}},{duplicate}"items":[{items}]}}"#)
        })
        .prop_flat_map(mangled)
}

/// The members of a JSON object, raw (the last of duplicate keys wins, as in the decoders).
type Members = BTreeMap<String, Box<RawValue>>;

/// A page with each item's `metadata.managedFields` removed and every other value kept as
/// written: raw, not re-encoded from a `serde_json::Value`, because a value the decoder
/// skips unread (a lone surrogate escape in a field `Pod` does not have) must stay unread.
/// `None` when the page is not a JSON object.
fn without_item_managed_fields(bytes: &[u8]) -> Option<Vec<u8>> {
    let parse = |raw: &RawValue| serde_json::from_str::<Members>(raw.get()).ok();
    fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
        serde_json::value::to_raw_value(value).unwrap()
    }
    let mut page: Members = serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()?;
    let items = page
        .get("items")
        .and_then(|items| serde_json::from_str::<Vec<Box<RawValue>>>(items.get()).ok());
    if let Some(items) = items {
        let items: Vec<Box<RawValue>> = items
            .into_iter()
            .map(|item| {
                let Some(mut object) = parse(&item) else {
                    return item;
                };
                if let Some(mut metadata) = object.get("metadata").and_then(|m| parse(m)) {
                    metadata.remove("managedFields");
                    object.insert("metadata".to_owned(), raw(&metadata));
                }
                raw(&object)
            })
            .collect();
        page.insert("items".to_owned(), raw(&items));
    }
    Some(serde_json::to_vec(&page).unwrap())
}

/// The page's outcome as comparable data: names cached, and (key, reason) set aside.
type Outcome = Result<(Vec<Pod>, Vec<(String, BadInput)>), String>;

fn page_outcome(bytes: &[u8], managed_fields: ManagedFields) -> Outcome {
    let page =
        decode_page_with::<Pod>(bytes, managed_fields).map_err(|f| format!("{:?}", f.bad_input))?;
    let pods = page
        .items
        .iter()
        .map(|pod| {
            let mut pod = (**pod).clone();
            pod.metadata.managed_fields = None;
            pod
        })
        .collect();
    let quarantined = page
        .quarantined
        .into_iter()
        .map(|q| (q.key, q.reason))
        .collect();
    Ok((pods, quarantined))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn page_decoding_never_panics_and_agrees_with_serde(bytes in page_bytes()) {
        let kept = page_outcome(&bytes, ManagedFields::Keep);
        let cut = page_outcome(&bytes, ManagedFields::Drop);
        // Whatever plain serde decodes whole, the page decoder caches whole. JSON text is
        // UTF-8 (RFC 8259): serde's `from_str` checks all of it, where `from_slice` lets
        // bad bytes through in values the type ignores.
        let serde_list = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| serde_json::from_str::<k8s_openapi::List<Pod>>(text).ok());
        if let Some(list) = serde_list {
            let (pods, quarantined) = kept.clone().expect("a page serde decodes");
            prop_assert!(quarantined.is_empty());
            let plain: Vec<Pod> = list.items.into_iter().map(|mut pod| {
                pod.metadata.managed_fields = None;
                pod
            }).collect();
            prop_assert_eq!(pods, plain);
        }
        // Skipping managedFields decodes as serde does once they are removed
        // (an object whose only fault is in its managedFields is cached, not quarantined).
        match without_item_managed_fields(&bytes) {
            Some(removed) => prop_assert_eq!(cut, page_outcome(&removed, ManagedFields::Keep)),
            None => prop_assert_eq!(cut, kept),
        }
    }
}

/// What the splitter must produce for a stream: its complete non-blank lines up to `max`
/// bytes, one `Oversized` per longer line, and `TruncatedBody` for a non-blank unfinished one.
fn expected_split(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Vec<BadInput>) {
    let mut segments: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    let last = segments.pop().unwrap_or_default();
    let mut lines = Vec::new();
    let mut skipped = Vec::new();
    for line in segments {
        if line.len() > max {
            skipped.push(BadInput::Oversized);
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push(line.to_vec());
        }
    }
    if last.len() > max {
        skipped.push(BadInput::Oversized);
    }
    if !last.iter().all(u8::is_ascii_whitespace) {
        skipped.push(BadInput::TruncatedBody);
    }
    (lines, skipped)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_watch_splitter_never_panics_and_keeps_every_line_in_order(
        stream in prop::collection::vec(
            prop_oneof![8 => any::<u8>(), 2 => Just(b'\n'), 1 => Just(b' ')],
            0..600,
        ),
        cuts in prop::collection::vec(0usize..600, 0..12),
        max in 1usize..64,
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= stream.len()).collect();
        cuts.sort_unstable();
        let mut splitter = LineSplitter::new(max);
        let (mut lines, mut skipped): (Vec<BytesMut>, Vec<BadInput>) = (Vec::new(), Vec::new());
        let mut from = 0;
        for at in cuts.into_iter().chain([stream.len()]) {
            splitter.push(&stream[from..at], &mut lines, &mut skipped);
            from = at;
        }
        skipped.extend(splitter.finish());
        let lines: Vec<Vec<u8>> = lines.into_iter().map(|l| l.to_vec()).collect();
        let (expected_lines, expected_skipped) = expected_split(&stream, max);
        prop_assert_eq!(lines, expected_lines);
        prop_assert_eq!(skipped, expected_skipped);
    }
}
