//! Skipping `metadata.managedFields` while a server's JSON is decoded, so the default
//! transform ([`Transform::DropManagedFields`](crate::Transform)) costs a skim over their
//! bytes instead of a decode and a free of what it drops.
//!
//! Why: on a realistic pod managedFields are about half the JSON and two thirds of the heap
//! allocations of a decoded object (each `fieldsV1` is a tree of `serde_json::Value` maps).
//! Decoding them only to drop them doubled the CPU time of an initial list, and freeing them
//! on the pipeline's thread serialised that cost after the list. client-go cannot skip them
//! (its transform runs on decoded objects); a decoder that knows where they sit can.
//!
//! # Contract
//! - [`from_str`] with [`ManagedFields::Drop`] decodes what `serde_json::from_str` decodes,
//!   except that the member `managedFields` of an object's `metadata` is read past, never
//!   handed to the type: in the top-level object ([`Document::Object`]), in each element of
//!   the top-level `items` array ([`Document::ListPage`]) or in the top-level `object`
//!   ([`Document::WatchEvent`]). A member of that name anywhere else (an annotation, a
//!   label, a CRD's own field) reaches the type, and so does text that merely contains the
//!   word. Keys are compared as decoded, so `"managed\u0046ields"` is the same member, as it
//!   is to the type.
//! - What is skipped must still be one valid JSON value (serde_json reads it as
//!   [`IgnoredAny`]), but need not be a valid list of `ManagedFieldsEntry`: an object whose
//!   only fault is the shape of the member the transform drops anyway is cached, where
//!   decoding it whole (client-go) would reject it.
//!   A syntax error anywhere fails the decode as serde_json would. One leniency: serde_json
//!   skims a skipped value without recursing, so nesting deeper than its limit of 128 fails
//!   a decode only outside the skipped member.
//! - Nothing is buffered or copied: the decoder walks the bytes once, and only the three
//!   outer levels (envelope, object, metadata) pass through the filter; every deeper value
//!   is decoded by serde_json directly, with its own nesting limit.
//! - The filtered levels hand keys to the type as strings, which every Kubernetes object's
//!   fields are; a type whose top-level keys are numbers would fail to decode.

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::fmt;

/// Whether a reflector keeps `metadata.managedFields` when decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManagedFields {
    /// Decode them (a custom transform or [`Transform::Keep`](crate::Transform) may read them).
    #[default]
    Keep,
    /// Skip them while decoding (the default transform drops them anyway).
    Drop,
}

/// Where in a document the Kubernetes objects whose managedFields may be skipped sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// The document is one object.
    Object,
    /// A watch event: the object is the top-level member `object`.
    WatchEvent,
    /// A list page: the objects are the elements of the top-level member `items`.
    ListPage,
}

/// Decodes `text` as `serde_json::from_str` does, skipping `metadata.managedFields` of the
/// document's objects when `managed_fields` says [`ManagedFields::Drop`] (see the module
/// contract).
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use panoptes_actors::managed_fields::{Document, ManagedFields, from_str};
///
/// let event = r#"{"type":"ADDED","object":{"metadata":{"name":"a",
///     "managedFields":[{"manager":"kubelet","fieldsV1":{"f:status":{}}}]}}}"#;
/// let event: kube::api::WatchEvent<Pod> =
///     from_str(event, ManagedFields::Drop, Document::WatchEvent).unwrap();
/// let kube::api::WatchEvent::Added(pod) = event else { panic!("an ADDED event") };
/// assert_eq!(pod.metadata.name.as_deref(), Some("a"));
/// assert_eq!(pod.metadata.managed_fields, None);
/// ```
pub fn from_str<'a, T: de::Deserialize<'a>>(
    text: &'a str,
    managed_fields: ManagedFields,
    document: Document,
) -> serde_json::Result<T> {
    if managed_fields == ManagedFields::Keep {
        return serde_json::from_str(text);
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserialize_skipping(&mut deserializer, document)?;
    deserializer.end()?;
    Ok(value)
}

/// Deserializes `T` from `deserializer`, skipping `metadata.managedFields` of the document's
/// objects.
fn deserialize_skipping<'de, T: de::Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
    document: Document,
) -> Result<T, D::Error> {
    let role = match document {
        Document::Object => Role::Resource,
        Document::WatchEvent => Role::WatchEvent,
        Document::ListPage => Role::ListPage,
    };
    T::deserialize(Scoped {
        inner: deserializer,
        role,
    })
}

/// What a value on the way to an object's metadata is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A watch event, whose member `object` is a resource.
    WatchEvent,
    /// A list page, whose member `items` holds resources.
    ListPage,
    /// The `items` array of a list page.
    Items,
    /// A Kubernetes object, whose member `metadata` is its metadata.
    Resource,
    /// An object's metadata, whose member `managedFields` is skipped.
    Metadata,
}

impl Role {
    /// The role of the value of member `key` of a map in this role, if it has one.
    fn of_member(self, key: &str) -> Option<Role> {
        match (self, key) {
            (Role::WatchEvent, "object") => Some(Role::Resource),
            (Role::ListPage, "items") => Some(Role::Items),
            (Role::Resource, "metadata") => Some(Role::Metadata),
            _ => None,
        }
    }
}

/// A deserializer for a value in `role`: maps (and, for `items`, sequences) it yields are
/// filtered; everything else goes straight to the inner deserializer.
struct Scoped<D> {
    inner: D,
    role: Role,
}

/// Forwards deserializer methods that cannot yield a map or a sequence to the inner
/// deserializer untouched.
macro_rules! forward_untouched {
    ($($method:ident($($arg:ident: $ty:ty),*))*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

/// Forwards deserializer methods that may yield a map, a sequence or a nested deserializer
/// with the visitor wrapped, so the role follows the value.
macro_rules! forward_scoped {
    ($($method:ident($($arg:ident: $ty:ty),*))*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let role = self.role;
            self.inner.$method($($arg,)* ScopedVisitor { inner: visitor, role })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Scoped<D> {
    type Error = D::Error;

    forward_scoped! {
        deserialize_any()
        deserialize_option()
        deserialize_newtype_struct(name: &'static str)
        deserialize_seq()
        deserialize_map()
        deserialize_struct(name: &'static str, fields: &'static [&'static str])
    }

    forward_untouched! {
        deserialize_bool() deserialize_i8() deserialize_i16() deserialize_i32()
        deserialize_i64() deserialize_i128() deserialize_u8() deserialize_u16()
        deserialize_u32() deserialize_u64() deserialize_u128() deserialize_f32()
        deserialize_f64() deserialize_char() deserialize_str() deserialize_string()
        deserialize_bytes() deserialize_byte_buf() deserialize_unit()
        deserialize_unit_struct(name: &'static str)
        deserialize_tuple(len: usize)
        deserialize_tuple_struct(name: &'static str, len: usize)
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
        deserialize_identifier() deserialize_ignored_any()
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that filters the map (or `items` sequence) it is given in its role.
struct ScopedVisitor<V> {
    inner: V,
    role: Role,
}

/// Forwards visitor methods for scalars untouched.
macro_rules! visit_untouched {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for ScopedVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    visit_untouched! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Scoped {
            inner: deserializer,
            role: self.role,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Scoped {
            inner: deserializer,
            role: self.role,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.role == Role::Items {
            self.inner.visit_seq(ItemsAccess { inner: seq })
        } else {
            self.inner.visit_seq(seq)
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(ScopedMap {
            inner: map,
            role: self.role,
            value_role: None,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// The elements of a list page's `items`: each one a resource.
struct ItemsAccess<A> {
    inner: A,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for ItemsAccess<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(ScopedSeed {
            inner: seed,
            role: Role::Resource,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The members of a map in `role`: `managedFields` skipped in metadata, and the value of a
/// member that leads on towards metadata deserialized in its own role.
struct ScopedMap<A> {
    inner: A,
    role: Role,
    /// The role of the value of the key just handed out, if it has one.
    value_role: Option<Role>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for ScopedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.inner.next_key_seed(KeySeed)? else {
                return Ok(None);
            };
            if self.role == Role::Metadata && key.as_str() == "managedFields" {
                self.inner.next_value::<IgnoredAny>()?;
                continue;
            }
            self.value_role = self.role.of_member(key.as_str());
            return match key {
                Key::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::new(key)),
                Key::Owned(key) => seed.deserialize(StringDeserializer::new(key)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        match self.value_role.take() {
            Some(role) => self.inner.next_value_seed(ScopedSeed { inner: seed, role }),
            None => self.inner.next_value_seed(seed),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A seed whose value is deserialized in `role`.
struct ScopedSeed<S> {
    inner: S,
    role: Role,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for ScopedSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Scoped {
            inner: deserializer,
            role: self.role,
        })
    }
}

/// A map key as decoded: borrowed from the text unless it had escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(key) => key,
            Key::Owned(key) => key,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(key))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(key.to_owned()))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key::Owned(key))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    use super::*;

    /// `value` decoded with managedFields skipped where `document` puts objects.
    fn skipped(value: &Value, document: Document) -> Value {
        let text = serde_json::to_string(value).unwrap();
        from_str(&text, ManagedFields::Drop, document).expect("still decodes")
    }

    fn managed() -> Value {
        json!([{"manager": "kubelet", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}])
    }

    #[test]
    fn should_skip_managed_fields_of_one_object_in_any_position() {
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
                skipped(&object, Document::Object),
                json!({"kind": "Pod", "metadata": expected, "spec": {}})
            );
        }
    }

    #[test]
    fn should_skip_them_in_every_item_of_a_list_and_in_a_watch_event() {
        let page = json!({"metadata": {"resourceVersion": "9"}, "items": [
            {"metadata": {"name": "a", "managedFields": managed()}},
            {"metadata": {"name": "b", "managedFields": managed()}},
        ]});
        assert_eq!(
            skipped(&page, Document::ListPage),
            json!({"metadata": {"resourceVersion": "9"}, "items": [
                {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})
        );
        let event = json!({"type": "ADDED", "object": {"metadata": {"managedFields": managed(), "name": "a"}}});
        assert_eq!(
            skipped(&event, Document::WatchEvent),
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
        assert_eq!(skipped(&object, Document::Object), object);
        // A list's own metadata, and objects outside `items` or `object`, are not objects'.
        let page = json!({"metadata": {"managedFields": 1}, "other": [{"metadata": {"managedFields": 2}}]});
        assert_eq!(skipped(&page, Document::ListPage), page);
        assert_eq!(skipped(&page, Document::WatchEvent), page);
    }

    #[test]
    fn should_skip_a_managed_fields_key_written_with_escapes_and_every_duplicate() {
        let text = r#"{"metadata":{"managed\u0046ields":[1],"name":"a","managedFields":{}}}"#;
        let value: Value = from_str(text, ManagedFields::Drop, Document::Object).unwrap();
        assert_eq!(value, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn should_fail_where_serde_fails_on_bad_json_even_inside_managed_fields() {
        for bad in [
            r#"{"metadata": {"managedFields": [1"#,
            r#"{"a": "unterminated"#,
            "}}",
            "",
            r#"{"metadata":{"managedFields":[1 2]}}"#,
            r#"{"metadata":{,"managedFields":[]}}"#,
            r#"{"metadata":{"managedFields":[],}}"#,
            r#"{"metadata":{"managedFields" x :[]}}"#,
            r#"{"metadata":{"managedFields":[]}} trailing"#,
        ] {
            let serde = serde_json::from_str::<Value>(bad).unwrap_err();
            let ours = from_str::<Value>(bad, ManagedFields::Drop, Document::Object).unwrap_err();
            assert_eq!(ours.to_string(), serde.to_string(), "{bad}");
        }
    }

    #[test]
    fn should_decode_a_pod_whose_managed_fields_have_the_wrong_shape() {
        let text = r#"{"metadata":{"name":"a","managedFields":"not a list"}}"#;
        assert!(serde_json::from_str::<Pod>(text).is_err());
        let pod: Pod = from_str(text, ManagedFields::Drop, Document::Object).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn should_decode_a_realistic_pod_as_the_default_transform_leaves_it() {
        let text =
            serde_json::to_string(&panoptes_sim::pods::realistic_pod("default", "p", 7)).unwrap();
        let mut decoded: Pod = serde_json::from_str(&text).unwrap();
        assert!(decoded.metadata.managed_fields.is_some(), "sim writes them");
        decoded.metadata.managed_fields = None;
        let skipped: Pod = from_str(&text, ManagedFields::Drop, Document::Object).unwrap();
        assert_eq!(skipped, decoded);
        let kept: Pod = from_str(&text, ManagedFields::Keep, Document::Object).unwrap();
        assert!(kept.metadata.managed_fields.is_some());
    }
}
