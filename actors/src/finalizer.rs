//! [`finalizer`]: run a reconciler so that deleting an object first runs its cleanup —
//! kube-runtime's `finalizer::finalizer` and controller-runtime's `controllerutil`
//! `AddFinalizer`/`RemoveFinalizer` pattern, for a reconciler of a [`crate::controller`].
//!
//! # Contract
//! Called with the object a reconcile is about and a finalizer name, it does exactly one of:
//! - **Add.** The object is not being deleted and lacks the finalizer: a JSON patch adds it
//!   (the patch `test`s the object's `resourceVersion`, so it never lands on a version the
//!   reconcile did not see) and answers [`Action::Done`] without calling the reconciler: the
//!   patch is a change the controller's watch sees, which queues the key again, and that
//!   reconcile runs [`FinalizerEvent::Apply`] on an object that is safe to act for.
//! - **Apply.** The finalizer is there, no `deletionTimestamp`: the reconciler's
//!   [`FinalizerEvent::Apply`]; its action or its error ([`FinalizerError::Apply`]).
//! - **Cleanup.** `deletionTimestamp` is set and the finalizer is there: the reconciler's
//!   [`FinalizerEvent::Cleanup`]. Only once it succeeded is the finalizer removed (a JSON
//!   patch that `test`s the finalizer is still at the index it was read at, so a concurrent
//!   change of the list fails the patch instead of removing someone else's finalizer); the
//!   API server deletes the object when no finalizer is left. A failed cleanup is
//!   [`FinalizerError::Cleanup`]: the controller retries the key with its backoff and the
//!   object stays, terminating, until a cleanup succeeds.
//! - **Nothing.** `deletionTimestamp` is set and the finalizer is gone (ours ran, others
//!   remain): [`Action::Done`].
//!
//! Every error converts into [`ReconcileError`](crate::controller::ReconcileError) with `?`,
//! so a reconciler returns `finalizer(..).await?`.
//!
//! # Differences from kube-runtime
//! The add patch tests `resourceVersion` rather than the whole finalizer list; a removal the
//! API server answers with 404 (the object went meanwhile) counts as done.

use std::future::Future;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::controller::Action;

/// What the reconciler is asked to do.
#[derive(Debug)]
pub enum FinalizerEvent<K> {
    /// Bring the world to what the object asks for (it carries the finalizer).
    Apply(Arc<K>),
    /// The object is being deleted: release what it holds outside the API server (owned
    /// objects with ownerReferences are the garbage collector's job, not cleanup's).
    Cleanup(Arc<K>),
}

/// Why [`finalizer`] failed; each is retried with the key's backoff.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError<E>
where
    E: std::error::Error + 'static,
{
    /// The reconciler's `Apply` failed.
    #[error("reconciling {object} failed: {source}")]
    Apply {
        /// `namespace/name` of the object.
        object: String,
        /// The reconciler's error.
        #[source]
        source: E,
    },
    /// The reconciler's `Cleanup` failed; the finalizer stays, so the object does too.
    #[error("cleaning up {object} failed (its finalizer stays until a cleanup succeeds): {source}")]
    Cleanup {
        /// `namespace/name` of the object.
        object: String,
        /// The reconciler's error.
        #[source]
        source: E,
    },
    /// The patch adding the finalizer failed (for instance the object changed since it was
    /// cached: its newer version is reconciled next).
    #[error("adding finalizer {finalizer:?} to {object} failed: {source}")]
    AddFinalizer {
        /// `namespace/name` of the object.
        object: String,
        /// The finalizer's name.
        finalizer: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// The patch removing the finalizer failed after a successful cleanup.
    #[error("removing finalizer {finalizer:?} from {object} failed: {source}")]
    RemoveFinalizer {
        /// `namespace/name` of the object.
        object: String,
        /// The finalizer's name.
        finalizer: String,
        /// The API server's answer.
        #[source]
        source: kube::Error,
    },
    /// The object has no `metadata.name`, so it cannot be patched.
    #[error("the object has no metadata.name")]
    Unnamed,
    /// The finalizer name is not one the API server accepts.
    #[error("finalizer name {name:?} is invalid: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Where the object stands with respect to the finalizer: the one decision of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Live, without the finalizer.
    Add,
    /// Live, with the finalizer.
    Apply,
    /// Being deleted, the finalizer at this index of `metadata.finalizers`.
    Cleanup { index: usize },
    /// Being deleted, without the finalizer.
    Nothing,
}

fn step(meta: &kube::api::ObjectMeta, finalizer: &str) -> Step {
    let index = meta
        .finalizers
        .iter()
        .flatten()
        .position(|f| f == finalizer);
    match (meta.deletion_timestamp.is_some(), index) {
        (false, None) => Step::Add,
        (false, Some(_)) => Step::Apply,
        (true, Some(index)) => Step::Cleanup { index },
        (true, None) => Step::Nothing,
    }
}

/// apimachinery's rule for a finalizer: a qualified name, at most 316 characters
/// (253 for the prefix, `/`, 63 for the name), no whitespace.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 316 {
        return Err("it is longer than 316 characters");
    }
    if name.chars().any(char::is_whitespace) {
        return Err("it contains whitespace");
    }
    Ok(())
}

/// Runs `reconcile` for `object` behind the finalizer `name`; see the module docs. `api`
/// must reach the object (namespaced to its namespace for a namespaced type).
pub async fn finalizer<K, E, Fut>(
    api: &Api<K>,
    name: &str,
    object: Arc<K>,
    reconcile: impl FnOnce(FinalizerEvent<K>) -> Fut,
) -> Result<Action, FinalizerError<E>>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    Fut: Future<Output = Result<Action, E>>,
    E: std::error::Error + 'static,
{
    check_name(name).map_err(|reason| FinalizerError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    let meta = object.meta();
    let object_name = meta.name.clone().ok_or(FinalizerError::Unnamed)?;
    let key = match &meta.namespace {
        Some(namespace) => format!("{namespace}/{object_name}"),
        None => object_name.clone(),
    };
    match step(meta, name) {
        Step::Add => {
            let patch = add_patch(meta, name);
            api.patch(
                &object_name,
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .map_err(|source| FinalizerError::AddFinalizer {
                object: key,
                finalizer: name.to_string(),
                source,
            })?;
            Ok(Action::Done)
        }
        Step::Apply => reconcile(FinalizerEvent::Apply(object))
            .await
            .map_err(|source| FinalizerError::Apply {
                object: key,
                source,
            }),
        Step::Cleanup { index } => {
            let action = reconcile(FinalizerEvent::Cleanup(object))
                .await
                .map_err(|source| FinalizerError::Cleanup {
                    object: key.clone(),
                    source,
                })?;
            let patch = remove_patch(index, name);
            match api
                .patch(
                    &object_name,
                    &PatchParams::default(),
                    &Patch::Json::<()>(patch),
                )
                .await
            {
                Ok(_) => Ok(action),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(action),
                Err(source) => Err(FinalizerError::RemoveFinalizer {
                    object: key,
                    finalizer: name.to_string(),
                    source,
                }),
            }
        }
        Step::Nothing => Ok(Action::Done),
    }
}

/// Adds `name`, on the version the caller saw only.
fn add_patch(meta: &kube::api::ObjectMeta, name: &str) -> json_patch::Patch {
    let mut ops = Vec::new();
    if let Some(version) = &meta.resource_version {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": version}));
    }
    match &meta.finalizers {
        Some(list) if !list.is_empty() => {
            ops.push(json!({"op": "add", "path": "/metadata/finalizers/-", "value": name}))
        }
        _ => ops.push(json!({"op": "add", "path": "/metadata/finalizers", "value": [name]})),
    }
    patch_of(ops)
}

/// Removes the finalizer at `index`, provided it is still `name`.
fn remove_patch(index: usize, name: &str) -> json_patch::Patch {
    let path = format!("/metadata/finalizers/{index}");
    patch_of(vec![
        json!({"op": "test", "path": path, "value": name}),
        json!({"op": "remove", "path": path}),
    ])
}

fn patch_of(ops: Vec<serde_json::Value>) -> json_patch::Patch {
    // The operations above are literals of json-patch's own format: they always parse.
    serde_json::from_value(serde_json::Value::Array(ops))
        .expect("finalizer patch operations are valid RFC 6902")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn meta(finalizers: &[&str], deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("w".into()),
            resource_version: Some("7".into()),
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.iter().map(|f| f.to_string()).collect()),
            deletion_timestamp: deleting.then(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-12-02T00:00:00Z".parse().unwrap(),
                )
            }),
            ..Default::default()
        }
    }

    #[test]
    fn should_pick_one_step_per_state() {
        assert_eq!(step(&meta(&[], false), "a/f"), Step::Add);
        assert_eq!(step(&meta(&["x/y"], false), "a/f"), Step::Add);
        assert_eq!(step(&meta(&["x/y", "a/f"], false), "a/f"), Step::Apply);
        assert_eq!(
            step(&meta(&["x/y", "a/f"], true), "a/f"),
            Step::Cleanup { index: 1 }
        );
        assert_eq!(step(&meta(&["x/y"], true), "a/f"), Step::Nothing);
    }

    #[test]
    fn should_test_the_resource_version_when_adding() {
        let patch = serde_json::to_value(add_patch(&meta(&[], false), "a/f")).unwrap();
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                {"op": "add", "path": "/metadata/finalizers", "value": ["a/f"]}
            ])
        );
        let patch = serde_json::to_value(add_patch(&meta(&["x/y"], false), "a/f")).unwrap();
        assert_eq!(
            patch[1],
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": "a/f"})
        );
    }

    #[test]
    fn should_reject_names_the_api_server_would() {
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(317)).is_err());
        assert!(check_name("panoptes.example.com/cleanup").is_ok());
    }
}
