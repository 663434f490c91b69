//! Bytes from a server are untrusted: what the reflector does with a list page or watch
//! event that will not decode whole, and the vocabulary for what it set aside.
//!
//! client-go decodes a list page in one piece: one object its type cannot hold fails the
//! whole list, which is retried forever, and the resource never syncs. Here a page (or event)
//! that fails to decode whole is decoded again one object at a time:
//!
//! # Contract
//! - **One bad object never blocks the rest.** An object that cannot be decoded into the
//!   cache's type is *quarantined* ([`Quarantined`]: its key when its metadata can be read,
//!   the reason, serde's error); every other object of the page or event stream is kept.
//! - **Duplicate keys, the last one wins.** JSON allows a key twice; Go's decoder and the API
//!   server keep the last value, and so do k8s-openapi's generated `Deserialize` impls and
//!   `serde_json::Value`. serde's derived structs (the page and watch-event envelopes) refuse
//!   duplicates instead; the envelopes are read here as maps, where the last value wins.
//! - Only the fast path runs on good bytes: the slow path costs nothing until a decode fails.
//!
//! # Differences from Go
//! When a key repeats with an object both times, Go decodes the second object *into* the
//! first (a merge: members only the first has are kept); here, as in k8s-openapi, the last
//! object replaces the first.
//! A wrong kind is recognised from the typed decoder's error ("invalid value: string
//! \"ConfigMap\", expected Pod"); a dynamic object of any kind is accepted, as the server
//! sent it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::ids::{ClusterId, ObjectKey, ResourceVersion};
use crate::managed_fields::{self, Document, ManagedFields};

/// Why bytes from a server were set aside (the `reason` label of the bad-input metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadInput {
    /// A watch line or list page that is not the JSON envelope it should be.
    InvalidFrame,
    /// An object of another kind or apiVersion than the cache's type.
    WrongKind,
    /// An object the cache's type cannot hold (a wrong field type, a missing required field).
    Undecodable,
    /// A watch event longer than `ReflectorConfig::max_event_bytes`.
    Oversized,
    /// A body that ended before its last chunk (the connection broke mid-list or mid-event).
    TruncatedBody,
    /// A `continue` token the server no longer honours (410 in the middle of a list).
    ExpiredContinue,
}

impl BadInput {
    /// Every reason, for reports and tests.
    pub const ALL: [BadInput; 6] = [
        BadInput::InvalidFrame,
        BadInput::WrongKind,
        BadInput::Undecodable,
        BadInput::Oversized,
        BadInput::TruncatedBody,
        BadInput::ExpiredContinue,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            BadInput::InvalidFrame => "invalid_frame",
            BadInput::WrongKind => "wrong_kind",
            BadInput::Undecodable => "undecodable",
            BadInput::Oversized => "oversized",
            BadInput::TruncatedBody => "truncated_body",
            BadInput::ExpiredContinue => "expired_continue",
        }
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// An object set aside because the cache's type could not hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// `namespace/name` when the metadata could be read, else where it was (`item 3`).
    pub key: String,
    /// What was wrong with it.
    pub reason: BadInput,
    /// What the decoder said.
    pub error: String,
    /// The object's resourceVersion when readable (a watch resumes after it).
    pub resource_version: Option<ResourceVersion>,
}

/// What one reflector has set aside: bad input counted by reason, each reason logged once
/// (later ones at debug), and the objects quarantined now, each logged once by key.
#[derive(Debug)]
pub(crate) struct Ledger {
    cluster: ClusterId,
    resource: String,
    counts: BTreeMap<BadInput, u64>,
    /// By key; replaced by each complete list's, a key released by a good watch event.
    quarantined: BTreeMap<String, Quarantined>,
}

impl Ledger {
    pub(crate) fn new(cluster: ClusterId, resource: String) -> Self {
        Self {
            cluster,
            resource,
            counts: BTreeMap::new(),
            quarantined: BTreeMap::new(),
        }
    }

    /// Counts bad input; logs the first of each reason.
    pub(crate) fn count(&mut self, reason: BadInput, detail: &str) {
        let count = self.counts.entry(reason).or_default();
        *count += 1;
        let (cluster, resource) = (&self.cluster, &self.resource);
        if *count == 1 {
            tracing::warn!(%cluster, %resource, %reason, detail,
                "bad input from the server; recovering (further ones of this reason at debug)");
        } else {
            tracing::debug!(%cluster, %resource, %reason, detail, "bad input");
        }
    }

    /// Sets an object aside: counted, logged once per key, reported.
    pub(crate) fn quarantine(&mut self, quarantined: Quarantined) {
        *self.counts.entry(quarantined.reason).or_default() += 1;
        if !self.quarantined.contains_key(&quarantined.key) {
            tracing::warn!(cluster = %self.cluster, resource = %self.resource,
                key = %quarantined.key, reason = %quarantined.reason, error = %quarantined.error,
                "object quarantined: the cache's type cannot hold it; the rest is cached");
        }
        self.quarantined
            .insert(quarantined.key.clone(), quarantined);
    }

    /// A complete list: exactly these objects are set aside now.
    pub(crate) fn replace(&mut self, list: Vec<Quarantined>) {
        self.quarantined.clear();
        for quarantined in list {
            self.quarantine(quarantined);
        }
    }

    /// The object decoded again (a watch event): no longer set aside.
    pub(crate) fn release(&mut self, key: &ObjectKey) {
        if !self.quarantined.is_empty() {
            self.quarantined.remove(key.as_str());
        }
    }

    pub(crate) fn counts(&self) -> &BTreeMap<BadInput, u64> {
        &self.counts
    }

    /// The objects set aside now, by key.
    pub(crate) fn quarantined(&self) -> impl Iterator<Item = &Quarantined> {
        self.quarantined.values()
    }
}

/// What decoding a list of raw objects kept and set aside, in order.
#[derive(Debug)]
pub struct Sorted<K> {
    /// The objects that decoded, in order.
    pub objects: Vec<Arc<K>>,
    /// The objects set aside, with why.
    pub quarantined: Vec<Quarantined>,
}

/// The members of a JSON object, the last value of a repeated key winning; `None` when the
/// text is not one JSON object.
pub(crate) fn members(json: &str) -> Option<BTreeMap<String, &RawValue>> {
    serde_json::from_str(json).ok()
}

/// Decodes each raw object on its own, quarantining the ones `K` cannot hold.
pub(crate) fn sort_objects<K: DeserializeOwned>(
    raw: &[&RawValue],
    managed_fields: ManagedFields,
) -> Sorted<K> {
    let mut sorted = Sorted {
        objects: Vec::with_capacity(raw.len()),
        quarantined: Vec::new(),
    };
    for (index, item) in raw.iter().enumerate() {
        match decode_object::<K>(item.get(), managed_fields) {
            Ok(object) => sorted.objects.push(Arc::new(object)),
            Err(mut quarantined) => {
                if quarantined.key.is_empty() {
                    quarantined.key = format!("item {index}");
                }
                sorted.quarantined.push(quarantined);
            }
        }
    }
    sorted
}

/// Decodes one object, skipping its managedFields when asked; on failure says which object
/// (its key, or empty when unreadable) and why.
pub(crate) fn decode_object<K: DeserializeOwned>(
    json: &str,
    managed_fields: ManagedFields,
) -> Result<K, Quarantined> {
    managed_fields::from_str::<K>(json, managed_fields, Document::Object)
        .map_err(|e| quarantine(json, &e))
}

/// Names an object that failed to decode with `error`.
fn quarantine(json: &str, error: &serde_json::Error) -> Quarantined {
    let error = error.to_string();
    let members = members(json).unwrap_or_default();
    let text = |members: &BTreeMap<String, &RawValue>, name: &str| {
        members
            .get(name)
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    };
    let wrong_kind = [text(&members, "kind"), text(&members, "apiVersion")]
        .into_iter()
        .flatten()
        .any(|sent| error.starts_with(&format!("invalid value: string {sent:?}")));
    // Read member by member: the rest of the metadata may be what failed to decode.
    let meta = members
        .get("metadata")
        .and_then(|raw| self::members(raw.get()))
        .unwrap_or_default();
    let key = match (text(&meta, "namespace"), text(&meta, "name")) {
        (Some(ns), Some(name)) if !ns.is_empty() => format!("{ns}/{name}"),
        (_, Some(name)) => name,
        _ => String::new(),
    };
    Quarantined {
        key,
        reason: if wrong_kind {
            BadInput::WrongKind
        } else {
            BadInput::Undecodable
        },
        error,
        resource_version: ResourceVersion::from_server(text(&meta, "resourceVersion").as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn should_keep_good_objects_and_name_the_bad_ones() {
        let items = [
            raw(r#"{"metadata":{"name":"a","namespace":"ns"}}"#),
            raw(
                r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"ns"}}"#,
            ),
            raw(r#"{"metadata":{"name":"b","namespace":"ns"},"spec":{"containers":7}}"#),
            raw(r#"{"metadata":7}"#),
        ];
        let refs: Vec<&RawValue> = items.iter().map(AsRef::as_ref).collect();
        let sorted = sort_objects::<Pod>(&refs, ManagedFields::Drop);
        let names: Vec<_> = sorted
            .objects
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, [Some("a".to_owned())]);
        let bad: Vec<_> = sorted
            .quarantined
            .iter()
            .map(|q| (q.key.as_str(), q.reason))
            .collect();
        assert_eq!(
            bad,
            [
                ("ns/cm", BadInput::WrongKind),
                ("ns/b", BadInput::Undecodable),
                ("item 3", BadInput::Undecodable)
            ]
        );
    }

    #[test]
    fn should_keep_what_the_last_list_set_aside_until_a_good_event_releases_it() {
        let set_aside = |key: &str| Quarantined {
            key: key.to_owned(),
            reason: BadInput::Undecodable,
            error: "bad".to_owned(),
            resource_version: None,
        };
        let mut ledger = Ledger::new(ClusterId::from("c"), "v1/pods".to_owned());
        ledger.quarantine(set_aside("ns/old"));
        ledger.replace(vec![set_aside("ns/a"), set_aside("ns/b")]);
        ledger.release(&ObjectKey::from("ns/a"));
        let keys: Vec<_> = ledger.quarantined().map(|q| q.key.as_str()).collect();
        assert_eq!(keys, ["ns/b"]);
        ledger.count(BadInput::Oversized, "a long line");
        assert_eq!(
            ledger.counts().clone(),
            BTreeMap::from([(BadInput::Undecodable, 3), (BadInput::Oversized, 1)])
        );
    }

    #[test]
    fn should_let_the_last_of_duplicate_keys_win() {
        let members = members(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(members["a"].get(), "3");
        let pod: Pod = decode_object(
            r#"{"metadata":{"name":"x","name":"y"},"metadata":{"name":"z"}}"#,
            ManagedFields::Drop,
        )
        .unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("z"));
    }
}
