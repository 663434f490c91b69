//! Event predicates: which updates reach a handler or a stream — controller-runtime's
//! `pkg/predicate` (`GenerationChangedPredicate`, `LabelChangedPredicate`, ...) and
//! kube-runtime's `predicates`, as one standalone value, [`Predicate<K>`].
//!
//! A predicate is attached to a listener through [`HandlerOptions::predicate`]
//! (`informer.add_handler(h, HandlerOptions::default().predicate(p))`, or
//! `informer.stream_with(options)`), so it runs on the pipeline's thread right before
//! delivery and costs no mailbox hop. It does not depend on handlers or informers, so the
//! controller layer can reuse it.
//!
//! # Contract
//! - **Deletes always pass**: a consumer must learn that an object is gone.
//! - **Adds** ask the predicate with `old = None`; every built-in predicate passes them
//!   (controller-runtime's `Funcs` default `Create` to true). A [`custom`] predicate decides.
//! - **Updates** ask the predicate with the old and the new object and pass when it says so.
//! - **Resyncs** follow controller-runtime: a resync is an update whose old and new are the
//!   same object, asked like any update, so [`generation_changed`], [`labels_changed`],
//!   [`annotations_changed`] and [`status_changed`] drop it and a [`custom`] predicate
//!   decides.
//! - A predicate is pure: it may be asked again about the same event (a retried delivery).
//!
//! ```
//! use k8s_openapi::api::apps::v1::Deployment;
//! use panoptes_actors::HandlerOptions;
//! use panoptes_actors::predicate::{self, Predicate};
//!
//! // Spec changes or relabelling, but not status-only updates.
//! let p: Predicate<Deployment> = predicate::generation_changed().or(predicate::labels_changed());
//! let options = HandlerOptions::default().predicate(p);
//! ```
//!
//! [`HandlerOptions::predicate`]: crate::HandlerOptions::predicate

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::event::Event;

/// The question a predicate answers: does the change from `old` (`None` for an add) to `new`
/// matter?
type PredicateFn<K> = dyn Fn(Option<&K>, &K) -> bool + Send + Sync;

/// Which adds and updates pass (deletes always do); see the [module docs](self). Cheap to
/// clone; combine with [`and`](Self::and) and [`or`](Self::or).
pub struct Predicate<K> {
    test: Arc<PredicateFn<K>>,
}

impl<K> Clone for Predicate<K> {
    fn clone(&self) -> Self {
        Self {
            test: self.test.clone(),
        }
    }
}

impl<K> fmt::Debug for Predicate<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Predicate")
    }
}

impl<K: 'static> Predicate<K> {
    fn new(test: impl Fn(Option<&K>, &K) -> bool + Send + Sync + 'static) -> Self {
        Self {
            test: Arc::new(test),
        }
    }

    /// Passes what both pass.
    pub fn and(self, other: Predicate<K>) -> Predicate<K> {
        Self::new(move |old, new| (self.test)(old, new) && (other.test)(old, new))
    }

    /// Passes what either passes.
    pub fn or(self, other: Predicate<K>) -> Predicate<K> {
        Self::new(move |old, new| (self.test)(old, new) || (other.test)(old, new))
    }

    /// Whether the change from `old` (`None` for an add) to `new` passes.
    pub fn matches(&self, old: Option<&K>, new: &K) -> bool {
        (self.test)(old, new)
    }

    /// Whether `event` passes: deletes always, adds and updates as the predicate says.
    pub fn admits(&self, event: &Event<K>) -> bool {
        match event {
            Event::Added { obj, .. } => self.matches(None, obj),
            Event::Updated { old, new, .. } => self.matches(Some(old), new),
            Event::Deleted { .. } => true,
        }
    }
}

/// Updates that change `metadata.generation`: spec changes, not status-only writes
/// (controller-runtime's `GenerationChangedPredicate`). Objects without a generation (most
/// core types other than workloads) never change it, so only their adds and deletes pass.
pub fn generation_changed<K: kube::Resource + 'static>() -> Predicate<K> {
    Predicate::new(|old: Option<&K>, new: &K| {
        old.is_none_or(|old| old.meta().generation != new.meta().generation)
    })
}

/// Updates that change `metadata.labels` (controller-runtime's `LabelChangedPredicate`);
/// no labels and an empty map are the same.
pub fn labels_changed<K: kube::Resource + 'static>() -> Predicate<K> {
    Predicate::new(|old: Option<&K>, new: &K| {
        old.is_none_or(|old| map_changed(&old.meta().labels, &new.meta().labels))
    })
}

/// Updates that change `metadata.annotations` (controller-runtime's
/// `AnnotationChangedPredicate`); no annotations and an empty map are the same.
pub fn annotations_changed<K: kube::Resource + 'static>() -> Predicate<K> {
    Predicate::new(|old: Option<&K>, new: &K| {
        old.is_none_or(|old| map_changed(&old.meta().annotations, &new.meta().annotations))
    })
}

/// Updates that change the object's `status` (as serialised: any type with a top-level
/// `status` field, dynamic objects included). It serialises both objects, so it costs about
/// as much as encoding them; prefer [`generation_changed`] where it answers the question.
pub fn status_changed<K: serde::Serialize + 'static>() -> Predicate<K> {
    Predicate::new(|old: Option<&K>, new: &K| {
        old.is_none_or(|old| !std::ptr::eq(old, new) && status_of(old) != status_of(new))
    })
}

/// A predicate of your own: `test(old, new)` with `old = None` for adds (deletes always
/// pass).
///
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use panoptes_actors::predicate;
///
/// let phase = |pod: &Pod| pod.status.as_ref().and_then(|s| s.phase.clone());
/// let phase_changed = predicate::custom(move |old: Option<&Pod>, new: &Pod| {
///     old.is_none_or(|old| phase(old) != phase(new))
/// });
/// assert!(phase_changed.matches(None, &Pod::default()));
/// ```
pub fn custom<K: 'static>(
    test: impl Fn(Option<&K>, &K) -> bool + Send + Sync + 'static,
) -> Predicate<K> {
    Predicate::new(test)
}

fn map_changed(
    old: &Option<BTreeMap<String, String>>,
    new: &Option<BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    old.as_ref().unwrap_or(&empty) != new.as_ref().unwrap_or(&empty)
}

/// The `status` field as JSON (`Null` when absent or the object does not serialise).
fn status_of<K: serde::Serialize>(obj: &K) -> serde_json::Value {
    match serde_json::to_value(obj) {
        Ok(serde_json::Value::Object(mut fields)) => {
            fields.remove("status").unwrap_or(serde_json::Value::Null)
        }
        _ => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::test_support::cluster;

    fn deployment(generation: i64, labels: &[(&str, &str)], replicas: i32) -> Arc<Deployment> {
        Arc::new(Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                generation: Some(generation),
                labels: (!labels.is_empty()).then(|| {
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                ready_replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn annotated(base: &Arc<Deployment>, note: &str) -> Arc<Deployment> {
        let mut d = (**base).clone();
        d.metadata.annotations = Some([("note".to_string(), note.to_string())].into());
        Arc::new(d)
    }

    fn update(old: &Arc<Deployment>, new: &Arc<Deployment>) -> Event<Deployment> {
        Event::Updated {
            cluster: cluster(),
            old: old.clone(),
            new: new.clone(),
        }
    }

    fn add_and_delete(obj: &Arc<Deployment>) -> [Event<Deployment>; 2] {
        [
            Event::Added {
                cluster: cluster(),
                obj: obj.clone(),
                initial: false,
            },
            Event::Deleted {
                cluster: cluster(),
                obj: obj.clone(),
                final_state_unknown: false,
            },
        ]
    }

    /// What `p` admits of: a spec change, a label change, an annotation change, a
    /// status-only change, a resync; adds and deletes are checked to pass.
    fn verdicts(p: &Predicate<Deployment>) -> [bool; 5] {
        let base = deployment(1, &[("app", "web")], 1);
        for event in add_and_delete(&base) {
            assert!(p.admits(&event), "{event:?} must pass");
        }
        [
            p.admits(&update(&base, &deployment(2, &[("app", "web")], 1))),
            p.admits(&update(&base, &deployment(1, &[("app", "api")], 1))),
            p.admits(&update(&base, &annotated(&base, "x"))),
            p.admits(&update(&base, &deployment(1, &[("app", "web")], 3))),
            p.admits(&update(&base, &base)),
        ]
    }

    #[test]
    fn should_pass_generation_changes_only() {
        assert_eq!(
            verdicts(&generation_changed()),
            [true, false, false, false, false]
        );
    }

    #[test]
    fn should_pass_label_changes_only() {
        assert_eq!(
            verdicts(&labels_changed()),
            [false, true, false, false, false]
        );
        let none = deployment(1, &[], 1);
        let mut empty = (*none).clone();
        empty.metadata.labels = Some(BTreeMap::new());
        assert!(
            !labels_changed().matches(Some(&*none), &empty),
            "no labels and empty labels are the same"
        );
    }

    #[test]
    fn should_pass_annotation_changes_only() {
        assert_eq!(
            verdicts(&annotations_changed()),
            [false, false, true, false, false]
        );
    }

    #[test]
    fn should_pass_status_changes_only() {
        assert_eq!(
            verdicts(&status_changed()),
            [false, false, false, true, false]
        );
    }

    #[test]
    fn should_let_a_custom_predicate_decide_adds_updates_and_resyncs() {
        let adds_and_resyncs = custom(|old: Option<&Deployment>, new: &Deployment| {
            old.is_none_or(|old| std::ptr::eq(old, new))
        });
        assert_eq!(
            verdicts(&adds_and_resyncs),
            [false, false, false, false, true]
        );
        let [added, deleted] = add_and_delete(&deployment(1, &[], 1));
        let no_adds = custom(|old: Option<&Deployment>, _: &Deployment| old.is_some());
        assert!(!no_adds.admits(&added), "a custom predicate decides adds");
        assert!(no_adds.admits(&deleted), "deletes always pass");
    }

    #[test]
    fn should_combine_with_and_and_or() {
        let either = generation_changed().or(labels_changed());
        assert_eq!(verdicts(&either), [true, true, false, false, false]);
        let both = generation_changed().and(labels_changed());
        assert_eq!(verdicts(&both), [false, false, false, false, false]);
        let base = deployment(1, &[("app", "web")], 1);
        assert!(both.matches(Some(&base), &deployment(2, &[("app", "api")], 1)));
    }
}
