//! Dropping `metadata.managedFields` from the JSON bytes before they are decoded, so the
//! default transform ([`Transform::DropManagedFields`](crate::Transform)) costs nothing
//! instead of a decode and a free of what it drops.
//!
//! Why: on a realistic pod managedFields are about half the JSON and two thirds of the heap
//! allocations of a decoded object (each `fieldsV1` is a tree of `serde_json::Value` maps).
//! Decoding them only to drop them doubled the CPU time of an initial list, and freeing them
//! on the pipeline's thread serialised that cost after the list. client-go cannot skip them
//! (its transform runs on decoded objects); a byte scan can.
//!
//! # Contract
//! - Removes the member `"managedFields"` (key, value and one separating comma) only where
//!   it is an object's metadata: in `metadata` of the top-level object (one object), of each
//!   element of the top-level `items` array (a list page), or of the top-level `object` (a
//!   watch event). An annotation, label or any other member named `managedFields` elsewhere
//!   is kept, and so is text that merely contains the word.
//! - Returns `None` ("not sure": decode the original bytes) when no such member exists, or on
//!   any anomaly: bytes not well-formed enough to scan, a `managedFields` value that is not
//!   valid JSON or nests deeper than serde_json would accept in place, a member whose
//!   neighbours would not stay well-formed once it is cut, or `managedFields` twice in one
//!   metadata (duplicate keys are valid JSON; the decoder then keeps the last, as Go does).
//!   The caller decodes the original bytes, so serde reports any syntax error as it would
//!   have: cutting never turns bytes serde would reject into bytes it accepts.
//! - Never panics, whatever the bytes (bytes from a server are untrusted: every index computed
//!   from them is checked; property tests in `tests/managed_fields_props.rs` drive it with
//!   random and adversarial JSON).
//! - One pass, no allocation but the output copy; the result decodes to the same object as
//!   the input with `metadata.managedFields` set to `None`.
//!
//! # Difference from decoding them
//! A `managedFields` value must be valid JSON to be cut, but not a valid list of
//! `ManagedFieldsEntry`: an object whose only fault is the shape of the member the transform
//! drops anyway is cached, where decoding it whole (client-go) would reject it.

use std::borrow::Cow;

/// Whether a reflector keeps `metadata.managedFields` when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManagedFields {
    /// Decode them (a custom transform or [`Transform::Keep`](crate::Transform) may read them).
    #[default]
    Keep,
    /// Cut them from the bytes before decoding (the default transform drops them anyway).
    Drop,
}

impl ManagedFields {
    /// `text` with every object's `metadata.managedFields` cut when this says
    /// [`ManagedFields::Drop`] and the scan is sure (see [`strip`]).
    pub fn apply(self, text: &str) -> Cow<'_, str> {
        let cut = match self {
            ManagedFields::Drop => strip(text.as_bytes()),
            ManagedFields::Keep => None,
        };
        // Cuts begin and end at ASCII punctuation, so the rest is still UTF-8; were it not,
        // the uncut text decodes just the same.
        cut.and_then(|cut| String::from_utf8(cut).ok())
            .map_or(Cow::Borrowed(text), Cow::Owned)
    }
}

/// What an open container is, as far as finding metadata goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An object whose `metadata` is an object's metadata.
    Resource,
    /// An object's `metadata`.
    Metadata,
    /// The top-level `items` array of a list.
    Items,
    Other,
}

#[derive(Debug)]
struct Frame {
    is_object: bool,
    role: Role,
    /// The last key read in this object (as raw bytes between the quotes).
    key: (usize, usize),
    /// A `managedFields` member of this metadata was already cut (a second one is a
    /// duplicate key: not sure which the decoder keeps, so the scan gives up).
    cut: bool,
}

/// serde_json refuses JSON nested deeper than this (its recursion limit of 128 counts the
/// level that fails); a cut value must not pass where the whole document would fail.
const MAX_DEPTH: usize = 127;

/// `json` without `metadata.managedFields` (see the module contract); `None` if there were
/// none or the scan was not sure.
pub fn strip(json: &[u8]) -> Option<Vec<u8>> {
    let cuts = find_cuts(json)?;
    if cuts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(json.len());
    let mut at = 0;
    for (from, to) in cuts {
        out.extend_from_slice(json.get(at..from)?);
        at = to;
    }
    out.extend_from_slice(json.get(at..)?);
    Some(out)
}

/// The byte ranges to cut, in order and disjoint; `None` when the scan was not sure.
fn find_cuts(json: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut expecting_key = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let end = string_end(json, i)?;
                let in_object = stack.last().is_some_and(|f| f.is_object);
                if in_object && expecting_key {
                    expecting_key = false;
                    let depth = stack.len();
                    let top = stack.last_mut()?;
                    top.key = (i + 1, end - 1);
                    if top.role == Role::Metadata && json.get(i + 1..end - 1)? == b"managedFields" {
                        if std::mem::replace(&mut top.cut, true) {
                            return None;
                        }
                        let value_start = after_colon(json, end)?;
                        let value_end = checked_value_end(json, value_start, depth)?;
                        let span = member_span(json, i, value_end)?;
                        if cuts.last().is_some_and(|last| last.1 > span.0) {
                            return None;
                        }
                        cuts.push(span);
                        i = value_end;
                        continue;
                    }
                }
                i = end;
                continue;
            }
            open @ (b'{' | b'[') => {
                let role = role_of_child(json, &stack, open == b'{');
                stack.push(Frame {
                    is_object: open == b'{',
                    role,
                    key: (0, 0),
                    cut: false,
                });
                expecting_key = open == b'{';
            }
            b'}' | b']' => {
                stack.pop()?;
                expecting_key = false;
            }
            b',' => expecting_key = stack.last().is_some_and(|f| f.is_object),
            _ => {}
        }
        i += 1;
    }
    stack.is_empty().then_some(cuts)
}

/// The role of a container opened as the current member of `stack`'s top.
fn role_of_child(json: &[u8], stack: &[Frame], is_object: bool) -> Role {
    let Some(parent) = stack.last() else {
        return if is_object {
            Role::Resource
        } else {
            Role::Other
        };
    };
    let key = json.get(parent.key.0..parent.key.1).unwrap_or_default();
    let top_level = stack.len() == 1;
    match (parent.is_object, parent.role, is_object) {
        (true, Role::Resource, true) if key == b"metadata" => Role::Metadata,
        (true, _, true) if top_level && key == b"object" => Role::Resource,
        (true, _, false) if top_level && key == b"items" => Role::Items,
        (false, Role::Items, true) => Role::Resource,
        _ => Role::Other,
    }
}

/// The index just past the string that opens at `start` (a `"`).
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += bytes_before_quote_or_backslash(json.get(i..)?);
        match *json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// How many leading bytes of `bytes` are certainly neither `"` nor `\\`, read eight at a
/// time (most of a pod's bytes are inside strings; looking at them one by one was most of
/// the scan's time). Stops short of the end, where the caller steps byte by byte. Why not
/// `memchr2`: its vector set-up costs more than it saves on strings this short, and
/// `memchr::arch::all::memchr::Two` (the same word trick) measured ~25 % slower here, as it
/// re-reads a matching word byte by byte.
fn bytes_before_quote_or_backslash(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = zero_byte(word ^ (ONES * u64::from(b'"')))
            | zero_byte(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            // The lowest flagged byte is exact (false flags only follow a true one).
            return skipped + (found.trailing_zeros() / 8) as usize;
        }
        skipped += 8;
    }
    skipped
}

/// The index of the value after the `:` that follows a key ending at `key_end`; `None` unless
/// only whitespace surrounds the colon.
fn after_colon(json: &[u8], key_end: usize) -> Option<usize> {
    let colon = skip_whitespace(json, key_end);
    (json.get(colon) == Some(&b':')).then(|| skip_whitespace(json, colon + 1))
}

fn skip_whitespace(json: &[u8], from: usize) -> usize {
    let rest = json.get(from..).unwrap_or_default();
    from + rest.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

/// The index just past the value starting at `start`, `depth` containers deep, once serde_json
/// agrees it is one valid JSON value it would accept at that depth.
fn checked_value_end(json: &[u8], start: usize, depth: usize) -> Option<usize> {
    let (end, nesting) = value_end(json, start)?;
    if depth + nesting > MAX_DEPTH {
        return None;
    }
    let value = json.get(start..end)?;
    // Strings are checked as the decoder would (it decodes managedFields, never skips them).
    std::str::from_utf8(value).ok()?;
    serde_json::from_slice::<serde::de::IgnoredAny>(value).ok()?;
    Some(end)
}

/// The index just past the JSON value starting at `start`, and how deeply it nests.
fn value_end(json: &[u8], start: usize) -> Option<(usize, usize)> {
    match *json.get(start)? {
        b'"' => Some((string_end(json, start)?, 0)),
        b'{' | b'[' => {
            let (mut depth, mut deepest) = (0usize, 0usize);
            let mut i = start;
            while i < json.len() {
                match json[i] {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        deepest = deepest.max(depth);
                    }
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some((i + 1, deepest));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let rest = &json[start..];
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(rest.len());
            Some((start + len, 0))
        }
    }
}

/// The range to cut for the member whose key opens at `key_start` and whose value ends at
/// `value_end`: with the comma after it when another member follows, or else with the comma
/// before it when a value precedes, or alone when it is the only member; `None` when the
/// object would not stay (or was not) well-formed around it.
fn member_span(json: &[u8], key_start: usize, value_end: usize) -> Option<(usize, usize)> {
    let after = skip_whitespace(json, value_end);
    let before = json
        .get(..key_start)?
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())?;
    let opens_object = json[before] == b'{';
    match json.get(after)? {
        b',' if opens_object || json[before] == b',' => {
            let next = skip_whitespace(json, after + 1);
            (json.get(next) == Some(&b'"')).then_some((key_start, after + 1))
        }
        b'}' if opens_object => Some((key_start, value_end)),
        b'}' if json[before] == b',' => {
            let previous = json
                .get(..before)?
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())?;
            let ends_value = !matches!(json[previous], b'{' | b'[' | b',' | b':');
            ends_value.then_some((before, value_end))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    use super::*;

    fn stripped(value: &Value) -> Value {
        let bytes = serde_json::to_vec(value).unwrap();
        let out = strip(&bytes).map_or(bytes, |out| out);
        serde_json::from_slice(&out).expect("still JSON")
    }

    fn managed() -> Value {
        json!([{"manager": "kubelet", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}])
    }

    #[test]
    fn should_cut_managed_fields_of_one_object_in_any_position() {
        for members in [
            json!({"managedFields": managed(), "name": "a"}),
            json!({"name": "a", "managedFields": managed(), "uid": "u"}),
            json!({"name": "a", "managedFields": managed()}),
            json!({"managedFields": managed()}),
        ] {
            let mut expected = members.clone();
            expected.as_object_mut().unwrap().remove("managedFields");
            let object = json!({"kind": "Pod", "metadata": members, "spec": {}});
            assert_eq!(
                stripped(&object),
                json!({"kind": "Pod", "metadata": expected, "spec": {}})
            );
        }
    }

    #[test]
    fn should_cut_them_from_every_item_of_a_list_and_from_a_watch_event() {
        let page = json!({"metadata": {"resourceVersion": "9"}, "items": [
            {"metadata": {"name": "a", "managedFields": managed()}},
            {"metadata": {"name": "b", "managedFields": managed()}},
        ]});
        assert_eq!(
            stripped(&page),
            json!({"metadata": {"resourceVersion": "9"}, "items": [
                {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})
        );
        let event = json!({"type": "ADDED", "object": {"metadata": {"managedFields": managed(), "name": "a"}}});
        assert_eq!(
            stripped(&event),
            json!({"type": "ADDED", "object": {"metadata": {"name": "a"}}})
        );
    }

    #[test]
    fn should_keep_members_named_managed_fields_that_are_not_metadata() {
        let object = json!({"metadata": {
            "name": "has \"managedFields\": in it \\",
            "annotations": {"managedFields": "kept"},
            "labels": {"x": "managedFields"},
        }, "spec": {"metadata": {"managedFields": "kept"}}, "data": {"managedFields": [1]}});
        let bytes = serde_json::to_vec(&object).unwrap();
        assert_eq!(strip(&bytes), None, "nothing to cut");
    }

    #[test]
    fn should_leave_unscannable_bytes_to_the_decoder() {
        for bad in [
            &b"{\"metadata\": {\"managedFields\": [1"[..],
            b"{\"a\": \"unterminated",
            b"}}",
            b"",
            // Regression (issue 11): overlapping cuts panicked with "slice index starts at 32
            // but ends at 31".
            b"{\"metadata\":{\"managedFields\":[],\"managedFields\":[]}}",
            // Cutting would make invalid JSON valid.
            b"{\"metadata\":{\"managedFields\":[1 2]}}",
            b"{\"metadata\":{,\"managedFields\":[]}}",
            b"{\"metadata\":{\"managedFields\":[],}}",
            b"{\"metadata\":{\"managedFields\" x :[]}}",
            b"{\"metadata\":{\"a\":1,,\"managedFields\":[]}}",
        ] {
            assert_eq!(strip(bad), None);
        }
    }

    #[test]
    fn should_decode_a_realistic_pod_as_the_default_transform_leaves_it() {
        let bytes =
            serde_json::to_vec(&panoptes_sim::pods::realistic_pod("default", "p", 7)).unwrap();
        let mut decoded: Pod = serde_json::from_slice(&bytes).unwrap();
        assert!(decoded.metadata.managed_fields.is_some(), "sim writes them");
        decoded.metadata.managed_fields = None;
        let cut = strip(&bytes).expect("managedFields found");
        assert!(cut.len() < bytes.len());
        assert_eq!(serde_json::from_slice::<Pod>(&cut).unwrap(), decoded);
    }
}
