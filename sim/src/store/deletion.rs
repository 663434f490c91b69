//! DELETE as kube-apiserver v1.28's generic registry store runs it (`Store.Delete`,
//! `rest.BeforeDelete`, `updateForGracefulDeletionAndFinalizers`,
//! `deletionFinalizersForGarbageCollection`):
//!
//! - **Graceful deletion** (pods, the only built-in with a graceful strategy): the grace
//!   period is the request's `gracePeriodSeconds`, else the pod's
//!   `terminationGracePeriodSeconds`, else 30 (the defaulted value); 0 when the pod is not
//!   scheduled (`spec.nodeName` empty) or already `Succeeded`/`Failed` (pod strategy's
//!   `CheckGracefulDelete`). The pod is written with `deletionTimestamp` = now + grace and
//!   `deletionGracePeriodSeconds`; with a grace above 0 it stays until the kubelet
//!   ([`super::kubelet`]) or a force delete (`gracePeriodSeconds=0`) removes it; with 0 it
//!   is removed at once (watch: MODIFIED, then DELETED). A second DELETE may only shorten
//!   the grace period.
//! - **Propagation**: `propagationPolicy=Orphan` (or the `orphan` finalizer, or
//!   `orphanDependents=true`) adds the `orphan` finalizer, `Foreground` the
//!   `foregroundDeletion` finalizer, `Background` (the default, except core/v1
//!   ReplicationControllers which orphan) removes both. The garbage collector
//!   ([`super::garbage_collector`]) does the rest.
//! - **Finalizers**: an object that has any is marked (`deletionTimestamp` = now,
//!   `deletionGracePeriodSeconds: 0`, `generation` + 1 where tracked) and answered as is;
//!   it goes once an update removes the last finalizer (`ShouldDeleteDuringUpdate`).
//! - **Namespaces** are handed to [`super::namespace_lifecycle`].

use std::sync::Arc;

use serde_json::{Value, json};

use super::object_meta::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, finalizers};
use super::registry::is_crd;
use super::state::State;
use super::watch::EventKind;
use super::{DeleteOptions, DeleteOutcome, ResourceType, Status, StoreConfig, StoredObject};

/// A pod's grace period when neither the request nor the pod names one (the API's default
/// for `terminationGracePeriodSeconds`).
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

impl State {
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        config: &StoreConfig,
    ) -> Result<DeleteOutcome, Status> {
        let old = self.get(rt, namespace, name)?;
        let old_value = old.value();
        check_preconditions(rt, name, &old, &old_value, opts)?;
        if is_namespace(rt) {
            return self.delete_namespace(rt, old, old_value, opts, config);
        }
        if opts.dry_run {
            return Ok(DeleteOutcome::Deleted(old));
        }
        let mut marked = old_value.clone();
        let grace = match before_delete(rt, &mut marked, opts) {
            Graceful::AlreadyPending => return Ok(DeleteOutcome::Pending(old)),
            Graceful::Set(grace) => Some(grace),
            Graceful::Not => None,
        };
        set_gc_finalizers(rt, &mut marked, opts);
        let pending_finalizers = !finalizers(&marked).is_empty();
        if grace.is_none() && pending_finalizers {
            mark_as_deleting(rt, &mut marked);
        }
        if pending_finalizers || grace.is_some_and(|g| g > 0) {
            if marked == old_value {
                return Ok(DeleteOutcome::Pending(old));
            }
            let stored = self.commit(rt, EventKind::Modified, marked, config);
            if let Some(grace) = grace.filter(|g| *g > 0) {
                self.lifecycle.kubelet.terminate(
                    &stored,
                    grace,
                    config.lifecycle.kubelet_termination,
                );
            }
            return Ok(DeleteOutcome::Pending(stored));
        }
        if grace.is_some() {
            // The graceful-deletion mark (grace 0) is written before the object goes.
            self.commit(rt, EventKind::Modified, marked.clone(), config);
            return Ok(DeleteOutcome::Deleted(
                self.remove_object(rt, marked, config),
            ));
        }
        Ok(DeleteOutcome::Deleted(
            self.remove_object(rt, old_value, config),
        ))
    }

    /// Removes an object for good (DELETED); a CRD takes its served resources with it.
    pub(crate) fn remove_object(
        &mut self,
        rt: &ResourceType,
        last: Value,
        config: &StoreConfig,
    ) -> Arc<StoredObject> {
        if is_crd(rt) {
            let text = |pointer: &str| {
                last.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
            let removed = self.commit(rt, EventKind::Deleted, last, config);
            self.unserve(&group, &plural);
            return removed;
        }
        self.commit(rt, EventKind::Deleted, last, config)
    }
}

/// What `rest.BeforeDelete` decided about graceful deletion.
enum Graceful {
    /// Not a graceful strategy, or an object already marked with grace 0.
    Not,
    /// The object now carries this grace period (and the matching deletionTimestamp).
    Set(i64),
    /// Already being deleted gracefully with a grace the request does not shorten.
    AlreadyPending,
}

fn before_delete(rt: &ResourceType, obj: &mut Value, opts: &DeleteOptions) -> Graceful {
    if !is_pod(rt) {
        return Graceful::Not;
    }
    let current_grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let Some(since) = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        let current = match current_grace {
            None | Some(0) => return Graceful::Not,
            Some(current) => current,
        };
        return match opts.grace_period_seconds {
            Some(requested) if requested < current => {
                // Only shortening: the deadline moves back by the difference.
                let started = shift_seconds(&since, -current);
                obj["metadata"]["deletionTimestamp"] = json!(shift_seconds(&started, requested));
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(requested);
                Graceful::Set(requested)
            }
            _ => Graceful::AlreadyPending,
        };
    }
    let mut grace = opts.grace_period_seconds.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_POD_GRACE_SECONDS)
    });
    let scheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !scheduled || finished {
        grace = 0;
    }
    if grace < 0 {
        grace = 1;
    }
    let now = State::now_rfc3339();
    obj["metadata"]["deletionTimestamp"] = json!(shift_seconds(&now, grace));
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    Graceful::Set(grace)
}

/// Adds or removes the `orphan` / `foregroundDeletion` finalizers as the request's
/// propagation policy (or the object's existing choice, or the resource's default) says.
fn set_gc_finalizers(rt: &ResourceType, obj: &mut Value, opts: &DeleteOptions) {
    let existing = finalizers(obj);
    let has = |f: &str| existing.iter().any(|e| e == f);
    let (orphan, foreground) = match opts.propagation_policy.as_deref() {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some("Background") => (false, false),
        _ if has(ORPHAN_FINALIZER) => (true, false),
        _ if has(FOREGROUND_FINALIZER) => (false, true),
        _ => (orphans_by_default(rt), false),
    };
    let mut wanted: Vec<String> = existing
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if orphan {
        wanted.push(ORPHAN_FINALIZER.into());
    }
    if foreground {
        wanted.push(FOREGROUND_FINALIZER.into());
    }
    let same_set = wanted.len() == existing.len() && wanted.iter().all(|f| has(f));
    if !same_set {
        obj["metadata"]["finalizers"] = json!(wanted);
    }
}

/// `markAsDeleting`: what a non-graceful resource with pending finalizers gets.
fn mark_as_deleting(rt: &ResourceType, obj: &mut Value) {
    let metadata = &mut obj["metadata"];
    if metadata.get("deletionTimestamp").is_none() {
        if let Some(generation) = metadata.get("generation").and_then(Value::as_i64)
            && generation > 0
            && super::defaults::tracks_generation(rt)
        {
            metadata["generation"] = json!(generation + 1);
        }
        metadata["deletionTimestamp"] = json!(State::now_rfc3339());
    }
    metadata["deletionGracePeriodSeconds"] = json!(0);
}

/// `ShouldDeleteDuringUpdate`: an update that leaves a deleting object without finalizers
/// removes it, unless a grace period still runs (a pod waits for its kubelet). A namespace
/// also waits for its `spec.finalizers`.
pub(crate) fn should_delete_during_update(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    if !finalizers(new).is_empty() || old.pointer("/metadata/deletionTimestamp").is_none() {
        return false;
    }
    let grace_over = old
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_none_or(|g| g == 0);
    let namespace_finalized = !is_namespace(rt)
        || new
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    grace_over && namespace_finalized
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    old: &StoredObject,
    old_value: &Value,
    opts: &DeleteOptions,
) -> Result<(), Status> {
    if let Some(uid) = &opts.preconditions_uid {
        let actual = old_value
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if uid != actual {
            return Err(Status::conflict(
                rt,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.preconditions_resource_version
        && *rv != old.resource_version.to_string()
    {
        return Err(Status::conflict(
            rt,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                old.resource_version
            ),
        ));
    }
    Ok(())
}

/// core/v1 ReplicationControllers orphan their pods unless told otherwise (kept for
/// backward compatibility by the real rcStrategy); everything else deletes dependents.
fn orphans_by_default(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "replicationcontrollers"
}

pub(crate) fn is_pod(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "pods"
}

pub(crate) fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

/// An RFC 3339 timestamp (seconds precision, as the API writes them) moved by `seconds`.
fn shift_seconds(timestamp: &str, seconds: i64) -> String {
    let parsed: jiff::Timestamp = match timestamp.parse() {
        Ok(parsed) => parsed,
        Err(_) => jiff::Timestamp::now(),
    };
    let shifted = parsed
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or(parsed);
    shifted.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
