//! A stored object parsed only where a write looks: the top-level members a patch touches
//! (plus `apiVersion`, `kind` and `metadata`) become a `serde_json::Value`, the others stay
//! the stored bytes they are. It is the write-path counterpart of etcd3's `GuaranteedUpdate`
//! decoding the whole object: here an annotation patch on a pod does not pay for parsing,
//! comparing and re-serializing its spec and status.
//!
//! # Contract
//!
//! - [`PartialObject::split`] reads only JSON the store itself serialized (compact, keys
//!   sorted, as `serde_json` writes a `Value` without `preserve_order`); anything it does not
//!   recognise makes it answer `None`, and the caller takes the general path.
//! - [`PartialObject::to_json`] of the parsed part gives byte for byte what
//!   `serde_json::to_vec` of the whole object (parsed part plus untouched members) gives:
//!   members are written in key order, untouched ones as their stored bytes, which are what
//!   serializing their parsed values would give again (the store writes floats with
//!   `float_roundtrip`).
//! - [`PartialObject::complete`] gives the whole object as a `Value`, for the rare paths that
//!   need it (a write that ends in a deletion).

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde_json::{Map, Value};

/// One stored object split into parsed and untouched top-level members.
#[derive(Debug)]
pub(crate) struct PartialObject {
    /// The stored JSON the untouched members point into.
    source: Bytes,
    /// Untouched members in key order: the key and the byte range of its value in `source`.
    raw: Vec<(String, Range<usize>)>,
}

impl PartialObject {
    /// Splits the stored `json` of an object: members for which `parse` says yes are returned
    /// parsed (as a JSON object), the rest kept as bytes. `None` when `json` is not the
    /// compact object the store writes.
    pub(crate) fn split(source: &Bytes, parse: impl Fn(&str) -> bool) -> Option<(Value, Self)> {
        let members = top_level_members(source)?;
        let mut parsed = Map::new();
        let mut raw = Vec::new();
        for (key_range, value_range) in members {
            let key: String = serde_json::from_slice(&source[key_range]).ok()?;
            if parse(&key) {
                let value: Value = serde_json::from_slice(&source[value_range]).ok()?;
                parsed.insert(key, value);
            } else {
                raw.push((key, value_range));
            }
        }
        Some((
            Value::Object(parsed),
            PartialObject {
                source: source.clone(),
                raw,
            },
        ))
    }

    /// Whether top-level member `key` is kept as stored bytes (so it is unchanged).
    pub(crate) fn is_untouched(&self, key: &str) -> bool {
        self.raw.iter().any(|(k, _)| k == key)
    }

    /// The whole object's compact JSON: `parsed` (an object with none of the untouched keys)
    /// merged with the untouched members, in key order.
    pub(crate) fn to_json(&self, parsed: &Value) -> Vec<u8> {
        let empty = Map::new();
        let parsed = parsed.as_object().unwrap_or(&empty);
        let mut out = Vec::with_capacity(self.source.len() + 256);
        out.push(b'{');
        let mut parsed_members = parsed.iter().peekable();
        let mut raw_members = self.raw.iter().peekable();
        let mut first = true;
        loop {
            let take_parsed = match (parsed_members.peek(), raw_members.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((pk, _)), Some((rk, _))) => pk.as_str() < rk.as_str(),
            };
            if !first {
                out.push(b',');
            }
            first = false;
            if take_parsed {
                let (key, value) = parsed_members.next().expect("peeked");
                write_key(&mut out, key);
                serde_json::to_writer(&mut out, value).expect("a Value always serializes");
            } else {
                let (key, range) = raw_members.next().expect("peeked");
                write_key(&mut out, key);
                out.extend_from_slice(&self.source[range.clone()]);
            }
        }
        out.push(b'}');
        out
    }

    /// The whole object as a `Value`: `parsed` plus the untouched members parsed.
    pub(crate) fn complete(&self, mut parsed: Value) -> Value {
        if let Some(map) = parsed.as_object_mut() {
            for (key, range) in &self.raw {
                let value = serde_json::from_slice(&self.source[range.clone()])
                    .expect("split checked the stored JSON");
                map.insert(key.clone(), value);
            }
        }
        parsed
    }
}

/// Writes `"key":` as `serde_json` writes a map key.
pub(super) fn write_key(out: &mut Vec<u8>, key: &str) {
    serde_json::to_writer(&mut *out, key).expect("a string always serializes");
    out.push(b':');
}

/// The byte ranges of an object's members: (key with its quotes, value).
pub(super) type MemberRanges = Vec<(Range<usize>, Range<usize>)>;

/// The (key, value) byte ranges of a compact JSON object's members; `None` if `json` is not
/// one compact object (whitespace, trailing bytes, unbalanced brackets).
pub(super) fn top_level_members(json: &[u8]) -> Option<MemberRanges> {
    let (members, end) = object_members(json, 0)?;
    (end == json.len()).then_some(members)
}

/// The top-level members of the object `json` whose keys come before `key` (its JSON bytes,
/// quotes included), and where the value of `key` starts if the object has it. Reading
/// stops at `key` or at the first key sorting after it (the store writes keys in order, so
/// `key` cannot follow): neither that value nor anything after it is read or checked.
pub(super) fn members_before(json: &[u8], key: &[u8]) -> Option<(MemberRanges, Option<usize>)> {
    let mut members = Vec::new();
    if json.first() != Some(&b'{') {
        return None;
    }
    if json.get(1) == Some(&b'}') {
        return (json.len() == 2).then_some((members, None));
    }
    let mut at = 1;
    loop {
        let (name, value_start) = member_key(json, at)?;
        let raw = &json[name.clone()];
        if raw == key {
            return Some((members, Some(value_start)));
        }
        // Unescaped string contents compare as the strings do (quotes would not: `"a"` sorts
        // after `"a!"`); escaped keys do not, so reading goes past them.
        if inner(raw) > inner(key) && !raw.contains(&b'\\') {
            return Some((members, None));
        }
        at = value_end(json, value_start)?;
        members.push((name, value_start..at));
        match json.get(at) {
            Some(b',') => at += 1,
            Some(b'}') if at + 1 == json.len() => return Some((members, None)),
            _ => return None,
        }
    }
}

/// A JSON string's bytes without its quotes.
fn inner(quoted: &[u8]) -> &[u8] {
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
}

/// The members of the compact JSON object opening at `json[at]`, and the index just past
/// its closing brace (what follows is not read).
fn object_members(json: &[u8], at: usize) -> Option<(MemberRanges, usize)> {
    object_members_reading(json, at, |_, start| value_end(json, start))
}

/// [`object_members`] with each value's end found by `read(key, start)` (the key's JSON
/// bytes and where its value starts).
fn object_members_reading(
    json: &[u8],
    mut at: usize,
    mut read: impl FnMut(&[u8], usize) -> Option<usize>,
) -> Option<(MemberRanges, usize)> {
    let mut members = Vec::new();
    if json.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    if json.get(at) == Some(&b'}') {
        return Some((members, at + 1));
    }
    loop {
        let (key, value_start) = member_key(json, at)?;
        at = read(&json[key.clone()], value_start)?;
        members.push((key, value_start..at));
        match json.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => return Some((members, at + 1)),
            _ => return None,
        }
    }
}

/// Given a member starting at `json[at]`, its key's range (quotes included) and where its
/// value starts.
fn member_key(json: &[u8], at: usize) -> Option<(Range<usize>, usize)> {
    if json.get(at) != Some(&b'"') {
        return None;
    }
    let end = string_end(json, at)?;
    (json.get(end) == Some(&b':')).then_some((at..end, end + 1))
}

/// The text of the JSON string `raw` (quotes included), read in place when it has no
/// escapes; `None` when `raw` is not a string.
pub(super) fn json_str(raw: &[u8]) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        return serde_json::from_slice::<String>(raw).ok().map(Cow::Owned);
    }
    std::str::from_utf8(inner).ok().map(Cow::Borrowed)
}

/// Given `json[at] == '"'`, the index just past the closing quote.
fn string_end(json: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        // Most bytes are inside strings: the portable word-at-a-time search reads eight at
        // once (the vectorised `memchr2` costs more than it saves on strings this short).
        at += memchr::arch::all::memchr::Two::new(b'"', b'\\').find(json.get(at..)?)?;
        if json[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
}

/// The index just past the JSON value starting at `at` (compact: no whitespace).
pub(super) fn value_end(json: &[u8], mut at: usize) -> Option<usize> {
    if matches!(json.get(at), None | Some(b',' | b'}' | b']')) {
        return None;
    }
    let mut depth = 0usize;
    loop {
        // Most bytes are inside keys and scalars: skip them with one table lookup each.
        while json.get(at).is_some_and(|b| !STRUCTURAL[usize::from(*b)]) {
            at += 1;
        }
        match *json.get(at)? {
            b'"' => {
                at = string_end(json, at)?;
            }
            b'{' | b'[' => {
                depth += 1;
                at += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return Some(at);
                }
                depth -= 1;
                at += 1;
            }
            b',' if depth == 0 => return Some(at),
            b' ' | b'\n' | b'\r' | b'\t' => return None,
            _ => at += 1,
        }
    }
}

/// The bytes [`value_end`] must look at: brackets, quotes, commas and whitespace.
const STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"\"{}[], \n\r\t";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// The members of a stored compact JSON object (`metadata`, a managedFields entry): keys
/// in the store's key order (read in place unless escaped), with the bytes of their values.
pub(super) struct Members<'a> {
    source: &'a [u8],
    members: Vec<(Cow<'a, str>, Range<usize>)>,
}

impl<'a> Members<'a> {
    /// The members of `source`, which must be exactly one compact object.
    pub(super) fn of(source: &'a [u8]) -> Option<Members<'a>> {
        let members = Members::at(source, 0)?;
        (members.source.len() == source.len()).then_some(members)
    }

    /// The members of the object opening at `json[at]`, read in the same pass that finds
    /// its end (what follows it is not read).
    pub(super) fn at(json: &'a [u8], at: usize) -> Option<Members<'a>> {
        Members::at_reading(json, at, b"", |_| None)
    }

    /// [`Members::at`], with the value of member `key` (its JSON bytes, quotes included)
    /// read by `read`, given where it starts and answering where it ends: a caller that
    /// needs that value's structure learns it in the same pass.
    pub(super) fn at_reading(
        json: &'a [u8],
        at: usize,
        key: &[u8],
        mut read: impl FnMut(usize) -> Option<usize>,
    ) -> Option<Members<'a>> {
        let (ranges, end) = object_members_reading(json, at, |name, start| {
            if name == key {
                read(start)
            } else {
                value_end(json, start)
            }
        })?;
        let mut members = Vec::with_capacity(ranges.len());
        for (key, value) in ranges {
            members.push((json_str(&json[key])?, value.start - at..value.end - at));
        }
        Some(Members {
            source: &json[at..end],
            members,
        })
    }

    /// The object's stored bytes.
    pub(super) fn bytes(&self) -> &'a [u8] {
        self.source
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, range)| &self.source[range.clone()])
    }

    /// Writes the object with the members of `replaced` (key, value bytes; `None` removes)
    /// put in place of (or, when new, between) the stored ones, in key order as `serde_json`
    /// orders a map.
    pub(super) fn write_with(&self, out: &mut Vec<u8>, replaced: &mut [(&str, Option<Vec<u8>>)]) {
        replaced.sort_by(|a, b| a.0.cmp(b.0));
        let mut replacements = replaced.iter().peekable();
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, key: &str, value: Option<&[u8]>| {
            let Some(value) = value else {
                return;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            write_key(out, key);
            out.extend_from_slice(value);
        };
        out.push(b'{');
        for (key, range) in &self.members {
            while let Some((new_key, value)) =
                replacements.next_if(|(new_key, _)| *new_key < &**key)
            {
                member(out, new_key, value.as_deref());
            }
            match replacements.next_if(|(new_key, _)| *new_key == &**key) {
                Some((_, value)) => member(out, key, value.as_deref()),
                None => member(out, key, Some(&self.source[range.clone()])),
            }
        }
        for (new_key, value) in replacements {
            member(out, new_key, value.as_deref());
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(value: &Value) -> Bytes {
        Bytes::from(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn splitting_and_joining_gives_the_same_bytes() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"a\"}": "x,]{"}},
            "spec": {"containers": [{"name": "c", "args": ["\\", "}"], "n": 1.5e300}]},
            "status": {"phase": "Running", "ok": true, "none": null, "n": -3},
            "zz": [], "empty": {}
        });
        let source = stored(&value);
        for parse in [
            &(|_: &str| true) as &dyn Fn(&str) -> bool,
            &|_: &str| false,
            &|k: &str| k == "metadata",
            &|k: &str| k != "spec",
        ] {
            let (parsed, rest) = PartialObject::split(&source, parse).expect("splits");
            assert_eq!(rest.to_json(&parsed), source.to_vec());
            assert_eq!(rest.complete(parsed), value);
        }
    }

    #[test]
    fn a_changed_parsed_part_lands_in_key_order() {
        let source = stored(&json!({"a": 1, "m": {"x": 1}, "z": [1, 2]}));
        let (mut parsed, rest) = PartialObject::split(&source, |k| k == "m").unwrap();
        assert!(rest.is_untouched("a") && rest.is_untouched("z") && !rest.is_untouched("m"));
        parsed["m"]["y"] = json!("new");
        parsed["b"] = json!(true);
        let expected = json!({"a": 1, "b": true, "m": {"x": 1, "y": "new"}, "z": [1, 2]});
        assert_eq!(
            rest.to_json(&parsed),
            serde_json::to_vec(&expected).unwrap()
        );
    }

    #[test]
    fn members_before_stops_at_the_key_or_where_it_would_be() {
        let json = br#"{"a":1,"k\u0001":[2],"m":{"x":"}"},"z":"never read ]"}"#;
        let (before, start) = members_before(json, br#""m""#).unwrap();
        assert_eq!(before.len(), 2);
        assert_eq!(
            &json[start.unwrap()..],
            &br#"{"x":"}"},"z":"never read ]"}"#[..]
        );
        let members = Members::at(json, start.unwrap()).unwrap();
        assert_eq!(members.bytes(), br#"{"x":"}"}"#);
        assert_eq!(members.get("x"), Some(&br#""}""#[..]));
        // "l" is not there: reading stops at "m", the first key after it.
        let (before, start) = members_before(json, br#""l""#).unwrap();
        assert_eq!((before.len(), start), (2, None));
        // Quotes do not decide the order: "a" sorts before "a!".
        let (before, start) = members_before(br#"{"a":1,"a!":2}"#, br#""a!""#).unwrap();
        assert_eq!((before.len(), start), (1, Some(12)));
        // Past every key: the whole object is read and checked.
        assert_eq!(members_before(json, br#""zz""#).unwrap().0.len(), 4);
        assert!(members_before(b"{\"a\":1} ", br#""zz""#).is_none());
        assert_eq!(members_before(b"{}", br#""a""#).unwrap().1, None);
    }

    #[test]
    fn keys_are_read_in_place_unless_escaped() {
        let members = Members::of(br#"{"plain":1,"t\tab":2,"\u00fc":3}"#).unwrap();
        assert!(matches!(members.members[0].0, Cow::Borrowed("plain")));
        assert_eq!(members.get("t\tab"), Some(&b"2"[..]));
        assert_eq!(members.get("\u{fc}"), Some(&b"3"[..]));
        assert!(Members::of(br#"{"a":1} "#).is_none());
        assert_eq!(json_str(br#""x\"y""#).as_deref(), Some("x\"y"));
        assert_eq!(json_str(b"12"), None);
    }

    #[test]
    fn what_the_store_did_not_write_is_refused() {
        for bad in [
            &b"{\"a\": 1}"[..],
            b"[1]",
            b"{\"a\":1",
            b"{\"a\":1}x",
            b"{\"a\":{\"b\":1}",
            b"{\"a\"",
            b"",
        ] {
            assert!(
                PartialObject::split(&Bytes::copy_from_slice(bad), |_| false).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let (parsed, rest) = PartialObject::split(&Bytes::from_static(b"{}"), |_| true).unwrap();
        assert_eq!(rest.to_json(&parsed), b"{}");
    }
}
