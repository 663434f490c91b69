//! A list answer made of stored JSON bytes: what a server-side watch cache does for a List
//! (`staging/src/k8s.io/apiserver/pkg/storage/cacher`), for an app serving its cache over
//! HTTP (`examples/pods_api.rs`).
//!
//! # Contract
//! - [`ListJson::write_to`] writes `{"apiVersion":..,"kind":..,"metadata":{..},"items":[..]}`
//!   by concatenating each item's bytes: nothing is decoded or re-encoded. The items are the
//!   cache's own buffers ([`Bytes`]), so building a `ListJson` copies no object.
//! - From a [compact](crate::CacheMode::Compact) cache the items are the stored bytes; from a
//!   typed cache each object is serialised when the `ListJson` is built (serde's cost, about
//!   what a direct List's encoding costs a server).
//! - `metadata.resourceVersion` is the version of the last change the cache applied, a hint
//!   for clients, not a consistent-read version; omitted when the cache has seen none.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;

/// A list of objects as JSON bytes, ready to write (see the module docs).
#[derive(Debug, Clone)]
pub struct ListJson {
    /// The list's `apiVersion` (`v1`, `apps/v1`).
    pub api_version: String,
    /// The list's `kind` (`PodList`).
    pub kind: String,
    /// `metadata.resourceVersion`, if the cache has seen one.
    pub resource_version: Option<Arc<str>>,
    /// Each item's JSON object.
    pub items: Vec<Bytes>,
}

impl ListJson {
    /// How many bytes [`write_to`](Self::write_to) writes.
    pub fn len(&self) -> usize {
        let separators = self.items.len().saturating_sub(1);
        self.header().len() + self.items.iter().map(Bytes::len).sum::<usize>() + separators + 2
    }

    /// The list has no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn header(&self) -> String {
        // Escaped through serde_json: an apiVersion or version with a quote stays valid JSON.
        let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let metadata = match &self.resource_version {
            Some(rv) => format!("{{\"resourceVersion\":{}}}", quoted(rv)),
            None => "{}".into(),
        };
        format!(
            "{{\"apiVersion\":{},\"kind\":{},\"metadata\":{},\"items\":[",
            quoted(&self.api_version),
            quoted(&self.kind),
            metadata
        )
    }

    /// Writes the list to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.header().as_bytes())?;
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(item)?;
        }
        out.write_all(b"]}")
    }

    /// The whole list in one buffer (sized exactly, filled once).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_write_valid_json_of_the_exact_length() {
        let list = ListJson {
            api_version: "v1".into(),
            kind: "PodList".into(),
            resource_version: Some("42".into()),
            items: vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\":2}"),
            ],
        };
        let bytes = list.to_vec();
        assert_eq!(bytes.len(), list.len());
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        assert_eq!(value["items"][1]["b"], 2);
        let empty = ListJson {
            items: Vec::new(),
            resource_version: None,
            ..list
        };
        let value: serde_json::Value = serde_json::from_slice(&empty.to_vec()).unwrap();
        assert_eq!(value["items"], serde_json::json!([]));
        assert_eq!(empty.to_vec().len(), empty.len());
    }
}
