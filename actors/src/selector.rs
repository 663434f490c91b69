//! One selector grammar for the whole project: label selectors as
//! `k8s.io/apimachinery/pkg/labels.Parse` reads them and field selectors as
//! `k8s.io/apimachinery/pkg/fields.ParseSelector` reads them, with the API server's own error
//! messages (the text of its `400 Bad Request`).
//!
//! # Contract
//! - **Parse** accepts exactly what a kube-apiserver (v1.28) accepts, so configuration checks
//!   and filtered views can neither reject a selector the server takes nor take one it
//!   rejects. An error carries the server's message verbatim.
//! - **Evaluate** as the server does: [`LabelSelector::matches`] against an object's labels
//!   (a missing label map is an empty one), [`FieldSelector::matches`] against a field getter
//!   (a field without a value reads as `""`, as apimachinery's `fields.Set.Get` does).
//!   Which fields a client can read without knowing the object's type is the caller's
//!   business; [`METADATA_FIELDS`] and [`metadata_field`] name the ones every object has.
//! - **Render** back with `Display`: a canonical query string (requirements sorted as the
//!   server sorts them, `in` values sorted and deduplicated, field values escaped) that
//!   parses back to an equal selector. Two spellings of one selector render the same, so
//!   the rendering is a good key for sharing watches.
//!
//! ```
//! use std::collections::BTreeMap;
//! use panoptes_actors::selector::{FieldSelector, LabelSelector, metadata_field};
//!
//! let labels = LabelSelector::parse("tier in (web, api), replicas>3,!canary").unwrap();
//! let pod: BTreeMap<String, String> =
//!     [("tier".into(), "web".into()), ("replicas".into(), "5".into())].into();
//! assert!(labels.matches(&pod));
//! assert_eq!(labels.to_string(), "!canary,replicas>3,tier in (api,web)");
//!
//! let error = LabelSelector::parse("a===b").unwrap_err();
//! assert_eq!(error.message, "unable to parse requirement: found '=', expected: identifier");
//!
//! let fields = FieldSelector::parse("metadata.name=web-0,metadata.namespace!=kube-system").unwrap();
//! let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
//!     name: Some("web-0".into()),
//!     namespace: Some("prod".into()),
//!     ..Default::default()
//! };
//! assert!(fields.matches(|field| metadata_field(&meta, field)));
//! ```

mod field;
mod label;
mod label_matcher;

pub use field::{FieldOp, FieldRequirement, FieldSelector};
pub use label::{LabelOp, LabelRequirement, LabelSelector};
pub(crate) use label_matcher::LabelMatcher;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Which grammar a [`SelectorError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorKind {
    /// A `labelSelector`.
    Label,
    /// A `fieldSelector`.
    Field,
}

impl std::fmt::Display for SelectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SelectorKind::Label => "label",
            SelectorKind::Field => "field",
        })
    }
}

/// A selector the API server would refuse; `message` is the server's own wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} selector {selector:?}: {message}")]
pub struct SelectorError {
    /// Which grammar.
    pub kind: SelectorKind,
    /// The selector as given.
    pub selector: String,
    /// The API server's own message for it.
    pub message: String,
}

/// Fields every object has in its metadata, so a client can evaluate them without knowing
/// the object's type. (The server supports these two for every resource.)
pub const METADATA_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// Reads one of [`METADATA_FIELDS`] from `meta` (`""` when unset, as the server reads it);
/// `None` for any other field.
pub fn metadata_field<'a>(meta: &'a ObjectMeta, field: &str) -> Option<&'a str> {
    match field {
        "metadata.name" => Some(meta.name.as_deref().unwrap_or_default()),
        "metadata.namespace" => Some(meta.namespace.as_deref().unwrap_or_default()),
        _ => None,
    }
}

/// Go's `%q` for the strings in error messages: Rust's escaping except that control
/// characters below 0x80 print as `\xNN` (Go's form) instead of `\u{N}`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Requirements joined by commas: the query-string form both grammars render.
fn write_joined<T: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    items: &[T],
) -> std::fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}
