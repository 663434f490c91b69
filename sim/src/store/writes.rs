//! Creates, updates and patches, as kube-apiserver's generic registry store runs them:
//! validation and defaulting on create, optimistic concurrency on resourceVersion,
//! generation bumps on spec changes, status/scale subresource isolation, managedFields
//! (server-side apply's ownership checks are [`super::server_side_apply`]'s), removal of a
//! deleting object whose last finalizer goes (deletes are [`super::deletion`]'s), and the
//! side effects of the controllers a real cluster runs (a namespace gets its `default`
//! ServiceAccount and `kube-root-ca.crt`; a CRD serves its resources once established).
//!
//! A patch tries, cheapest first: the label/annotation fast path that splices the stored
//! bytes ([`super::fast_patch`]), a partial write that parses only the touched top-level
//! members ([`PartialObject`]), then the general path on the whole object. Each of the first
//! two declines (and the next one runs) whenever it could store something else.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::defaults;
use super::deletion;
use super::managed_fields::{self, Writer};
use super::partial_object::PartialObject;
use super::patch;
use super::registry::{self, is_crd};
use super::server_side_apply::{self, Applied};
use super::state::State;
use super::storage_key::storage_key;
use super::watch::EventKind;
use super::{
    PatchType, ResourceType, Status, StoreConfig, StoredObject, Subresource, WriteOptions,
};

/// The manager named when a request names none and the HTTP side found no user agent.
const DEFAULT_MANAGER: &str = "unknown";

/// Description of the kube-root-ca.crt ConfigMap, as kube-controller-manager writes it.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// metadata fields only the server sets; writes cannot change them.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "name",
    "namespace",
];

impl State {
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
        config: &StoreConfig,
    ) -> Result<Arc<StoredObject>, Status> {
        let mut obj = obj;
        let name = prepare_create(rt, namespace, &mut obj, is_strict(opts))?;
        let namespace = if rt.namespaced {
            namespace.map(str::to_string).or_else(|| {
                obj.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        } else {
            None
        };
        if rt.namespaced {
            let ns = namespace.as_deref().ok_or_else(|| {
                Status::bad_request("the namespace of the provided object is empty")
            })?;
            let Some(ns_obj) = self.namespace_exists(ns) else {
                return Err(Status::namespace_not_found(ns));
            };
            if ns_obj
                .value()
                .pointer("/metadata/deletionTimestamp")
                .is_some()
            {
                let given = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Err(Status::namespace_terminating(rt, given, ns));
            }
            obj["metadata"]["namespace"] = json!(ns);
        }
        let name = self.unique_name(rt, namespace.as_deref(), &obj, name)?;
        obj["metadata"]["name"] = json!(name);
        defaults::default_on_create(rt, &mut obj);
        let now = State::now_rfc3339();
        let metadata = obj["metadata"].as_object_mut().expect("prepared");
        metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        metadata.insert("creationTimestamp".into(), json!(now));
        metadata.remove("deletionTimestamp");
        metadata.remove("deletionGracePeriodSeconds");
        metadata.remove("managedFields");
        metadata.remove("resourceVersion");
        if defaults::tracks_generation(rt) {
            metadata.insert("generation".into(), json!(1));
        }
        if is_crd(rt) {
            obj["status"] = registry::crd_status(&obj, &now);
        }
        let fields = managed_fields::field_set(&without_status(rt, &obj));
        let manager = opts.field_manager.as_deref().unwrap_or(DEFAULT_MANAGER);
        let api_version = rt.api_version();
        managed_fields::record(
            &mut obj,
            &Writer {
                manager,
                operation: "Update",
                subresource: None,
                api_version: &api_version,
                time: &now,
            },
            fields,
            // A new object has no other manager to take fields from.
            &json!({}),
        );
        if opts.dry_run {
            return Ok(Arc::new(StoredObject::new(&obj, self.rv)));
        }
        if is_crd(rt) {
            self.register_crd(&obj).map_err(|why| {
                Status::invalid(
                    &rt.kind,
                    &rt.group,
                    &name,
                    &[("spec", "FieldValueInvalid", why)],
                )
            })?;
        }
        let stored = self.commit(rt, EventKind::Added, obj, config);
        if rt.group.is_empty() && rt.plural == "namespaces" {
            self.populate_namespace(&name, config);
        }
        Ok(stored)
    }

    /// Stores an already complete object as given (seeding: what controllers and kubelets
    /// would have written); only the resourceVersion is stamped.
    pub fn insert_as_is(
        &mut self,
        rt: &ResourceType,
        obj: Value,
        config: &StoreConfig,
    ) -> Result<Arc<StoredObject>, Status> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let namespace = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        if rt.namespaced {
            let ns = namespace.as_deref().unwrap_or("");
            if self.namespace_exists(ns).is_none() {
                return Err(Status::namespace_not_found(ns));
            }
        }
        if self
            .get(rt, namespace.as_deref().filter(|_| rt.namespaced), &name)
            .is_ok()
        {
            return Err(Status::already_exists(rt, &name));
        }
        Ok(self.commit(rt, EventKind::Added, obj, config))
    }

    fn unique_name(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: &Value,
        name: String,
    ) -> Result<String, Status> {
        let generate = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if !generate {
            if self.get(rt, namespace, &name).is_ok() {
                return Err(Status::already_exists(rt, &name));
            }
            return Ok(name);
        }
        // generateName collisions retry, as the real registry retries a few times.
        for _ in 0..8 {
            let candidate = format!("{name}{}", defaults::random_suffix());
            if self.get(rt, namespace, &candidate).is_err() {
                return Ok(candidate);
            }
        }
        Err(Status::already_exists(rt, &name))
    }

    fn populate_namespace(&mut self, namespace: &str, config: &StoreConfig) {
        let now = State::now_rfc3339();
        let kcm = |fields: Value| json!([{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields}]);
        let sa = json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {
            "name": "default", "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now}});
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
            "name": "kube-root-ca.crt", "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now,
            "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
            "managedFields": kcm(json!({"f:data": {".": {}, "f:ca.crt": {}}, "f:metadata": {"f:annotations": {".": {}, "f:kubernetes.io/description": {}}}}))},
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nsimulated\n-----END CERTIFICATE-----\n"}});
        for (plural, object) in [("serviceaccounts", sa), ("configmaps", cm)] {
            if let Some(rt) = self
                .served
                .iter()
                .find(|r| r.group.is_empty() && r.plural == plural)
                .cloned()
            {
                let _ = self.insert_as_is(&rt, object, config);
            }
        }
    }

    /// An update of the main resource or a subresource. `apply_fields` makes it an Apply.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        obj: Value,
        opts: &WriteOptions,
        config: &StoreConfig,
        apply: Option<Applied>,
    ) -> Result<Arc<StoredObject>, Status> {
        let old = self.get(rt, namespace, name)?;
        let old_value = old.value();
        self.update_from(
            rt,
            (old, old_value),
            name,
            sub,
            obj,
            opts,
            config,
            apply,
            None,
        )
    }

    /// `update` of an object already read and parsed (`old` and its value), so a patch
    /// parses the stored JSON once. With `rest`, `old_value` and `obj` hold only the parsed
    /// top-level members of a [`PartialObject`] and the others are `rest`'s unchanged bytes
    /// (the caller checked that nothing below needs them).
    #[allow(clippy::too_many_arguments)]
    fn update_from(
        &mut self,
        rt: &ResourceType,
        (old, old_value): (Arc<StoredObject>, Value),
        name: &str,
        sub: Subresource,
        obj: Value,
        opts: &WriteOptions,
        config: &StoreConfig,
        apply: Option<Applied>,
        rest: Option<&PartialObject>,
    ) -> Result<Arc<StoredObject>, Status> {
        if !obj.is_object() {
            return Err(Status::bad_body(rt, "the body must be a JSON object"));
        }
        if let Some(rv) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            && rv != old.resource_version.to_string()
        {
            return Err(Status::stale_conflict(rt, name));
        }
        if let Some(body_name) = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            && body_name != name
        {
            return Err(Status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if sub == Subresource::Main && is_strict(opts) {
            defaults::reject_unknown_fields(rt, &obj)?;
        }
        let mut new = match sub {
            Subresource::Main => {
                let mut new = obj;
                // A patch starts from the stored object, so its status is usually unchanged:
                // comparing is much cheaper than copying it back.
                if rt.status_subresource && new.get("status") != old_value.get("status") {
                    set_or_remove(&mut new, "status", old_value.get("status"));
                }
                new
            }
            Subresource::Status => {
                if !rt.status_subresource {
                    return Err(super::state::unknown_resource());
                }
                let mut new = old_value.clone();
                set_or_remove(&mut new, "status", obj.get("status"));
                new
            }
            Subresource::Scale => {
                if !rt.scale_subresource {
                    return Err(super::state::unknown_resource());
                }
                let mut new = old_value.clone();
                let replicas = obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
                new["spec"]["replicas"] = replicas;
                new
            }
        };
        restore_server_fields(rt, &mut new, &old_value);
        if defaults::tracks_generation(rt) && spec_changed(&old_value, &new) {
            let generation = old_value
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if new == old_value && apply.as_ref().is_none_or(|a| a.ownership_unchanged) {
            return Ok(old);
        }
        let now = State::now_rfc3339();
        let manager = opts.field_manager.as_deref().unwrap_or(DEFAULT_MANAGER);
        let api_version = rt.api_version();
        let (operation, fields, taken) = match apply {
            Some(applied) => ("Apply", applied.owned, applied.changed),
            None => {
                let changed = managed_fields::changed_set(&old_value, &new);
                ("Update", changed.clone(), changed)
            }
        };
        let subresource = match sub {
            Subresource::Main => None,
            Subresource::Status => Some("status"),
            Subresource::Scale => Some("scale"),
        };
        managed_fields::record(
            &mut new,
            &Writer {
                manager,
                operation,
                subresource,
                api_version: &api_version,
                time: &now,
            },
            fields,
            &taken,
        );
        if let Some(rest) = rest {
            // Dry runs, CRDs and namespaces never come here (see `patch_partially`).
            if deletion::should_delete_during_update(rt, &old_value, &new) {
                return Ok(self.remove_object(rt, rest.complete(new), config));
            }
            return Ok(self.commit_partial(rt, new, rest, &old, config));
        }
        if opts.dry_run {
            return Ok(Arc::new(StoredObject::new(&new, old.resource_version)));
        }
        if deletion::should_delete_during_update(rt, &old_value, &new) {
            return Ok(self.remove_object(rt, new, config));
        }
        if is_crd(rt) {
            // New served versions appear at once; removed ones keep serving until deletion.
            self.register_crd(&new).map_err(|why| {
                Status::invalid(
                    &rt.kind,
                    &rt.group,
                    name,
                    &[("spec", "FieldValueInvalid", why)],
                )
            })?;
        }
        Ok(self.commit(rt, EventKind::Modified, new, config))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
        config: &StoreConfig,
    ) -> Result<Arc<StoredObject>, Status> {
        if patch_type == PatchType::Apply {
            let manager = match opts.field_manager.as_deref() {
                Some(manager) if !manager.is_empty() => manager,
                _ => return Err(Status::apply_needs_field_manager()),
            };
            let mut applied = patch::parse_apply_body(body)?;
            server_side_apply::check_kind(rt, &applied)?;
            server_side_apply::reset_fields(rt, sub, &mut applied);
            let owned = managed_fields::applied_set(&applied);
            if self.get(rt, namespace, name).is_err() && sub == Subresource::Main {
                let mut obj = applied;
                obj["metadata"]["name"] = json!(name);
                let created = self.create(rt, namespace, obj, opts, config)?;
                return self.relabel_apply(rt, namespace, name, created, opts, owned);
            }
            let old = self.get(rt, namespace, name)?;
            let old_value = old.value();
            let mut target = old_value.clone();
            patch::strategic_merge(&mut target, &applied);
            let subresource = (sub == Subresource::Status).then_some("status");
            let ownership = server_side_apply::reconcile(
                &old_value,
                &mut target,
                owned,
                manager,
                subresource,
                opts.force,
            )?;
            return self.update_from(
                rt,
                (old, old_value),
                name,
                sub,
                target,
                opts,
                config,
                Some(ownership),
                None,
            );
        }
        let old = self.get(rt, namespace, name)?;
        if sub == Subresource::Main && partial_write_allowed(rt, sub, opts) {
            let manager = opts.field_manager.as_deref().unwrap_or(DEFAULT_MANAGER);
            if let Some(patched) =
                self.patch_metadata_maps(rt, &old, patch_type, body, manager, config)
            {
                #[cfg(test)]
                {
                    PARTIAL_WRITES_TAKEN.with(|taken| taken.set(taken.get() + 1));
                    FAST_PATCHES_TAKEN.with(|taken| taken.set(taken.get() + 1));
                }
                return Ok(patched);
            }
        }
        if let Some(patched) =
            self.patch_partially(rt, &old, name, sub, patch_type, body, opts, config)
        {
            return patched;
        }
        let old_value = old.value();
        let mut target = match sub {
            Subresource::Scale => scale_of(rt, &old_value)?,
            _ => old_value.clone(),
        };
        patch::apply_patch(&mut target, patch_type, body)?;
        if !target.is_object() {
            return Err(Status::bad_request(
                "the patch produced something other than an object",
            ));
        }
        self.update_from(
            rt,
            (old, old_value),
            name,
            sub,
            target,
            opts,
            config,
            None,
            None,
        )
    }

    /// A patch that touches a few top-level members (an annotation, a label, the status)
    /// applied to those members only: the others stay the stored bytes (see
    /// [`PartialObject`]). `None` when the patch or the write needs the whole object, and
    /// the caller takes the general path, which gives the same result.
    #[allow(clippy::too_many_arguments)]
    fn patch_partially(
        &mut self,
        rt: &ResourceType,
        old: &Arc<StoredObject>,
        name: &str,
        sub: Subresource,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
        config: &StoreConfig,
    ) -> Option<Result<Arc<StoredObject>, Status>> {
        if !partial_write_allowed(rt, sub, opts) {
            return None;
        }
        let touched = patch::touched_members(patch_type, body)?;
        let parse = |key: &str| {
            matches!(key, "apiVersion" | "kind" | "metadata")
                || (key == "status" && sub == Subresource::Status)
                || touched.iter().any(|t| t == key)
        };
        let (old_value, rest) = PartialObject::split(&old.json, parse)?;
        #[cfg(test)]
        PARTIAL_WRITES_TAKEN.with(|taken| taken.set(taken.get() + 1));
        let mut target = old_value.clone();
        if let Err(status) = patch::apply_patch(&mut target, patch_type, body) {
            return Some(Err(status));
        }
        let map = target.as_object()?;
        if map.keys().any(|key| rest.is_untouched(key)) {
            // touched_members missed a member: the general path will do it right.
            return None;
        }
        Some(self.update_from(
            rt,
            (old.clone(), old_value),
            name,
            sub,
            target,
            opts,
            config,
            None,
            Some(&rest),
        ))
    }

    /// After an apply that created the object, the create's Update entry becomes the
    /// applier's Apply entry (as a real server records an apply-create).
    fn relabel_apply(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        created: Arc<StoredObject>,
        opts: &WriteOptions,
        fields: Value,
    ) -> Result<Arc<StoredObject>, Status> {
        if opts.dry_run {
            return Ok(created);
        }
        let mut value = created.value();
        let manager = opts.field_manager.as_deref().unwrap_or(DEFAULT_MANAGER);
        let time = value["metadata"]["creationTimestamp"].clone();
        value["metadata"]["managedFields"] = json!([{
            "manager": manager, "operation": "Apply", "apiVersion": rt.api_version(), "time": time,
            "fieldsType": "FieldsV1", "fieldsV1": fields}]);
        // Rewrites the just-created object in place: same rv, no extra event, as one write.
        let stored = Arc::new(StoredObject::new(&value, created.resource_version));
        let key = super::storage_key::object_key(namespace, name);
        if let Some(storage) = self.storages.get_mut(&storage_key(rt)) {
            storage.objects.insert(key, stored.clone());
        }
        Ok(stored)
    }
}

/// Checks and completes a create's metadata; returns the name (or generateName prefix).
fn prepare_create(
    rt: &ResourceType,
    namespace: Option<&str>,
    obj: &mut Value,
    opts_strict: bool,
) -> Result<String, Status> {
    let Some(map) = obj.as_object_mut() else {
        return Err(Status::bad_body(rt, "the body must be a JSON object"));
    };
    map.entry("kind").or_insert_with(|| json!(rt.kind));
    map.entry("apiVersion")
        .or_insert_with(|| json!(rt.api_version()));
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        return Err(Status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: metadata must be an object",
            rt.kind, rt.version, rt.kind
        )));
    }
    if let (Some(url_ns), Some(body_ns)) =
        (namespace, metadata.get("namespace").and_then(Value::as_str))
        && rt.namespaced
        && url_ns != body_ns
    {
        return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if !rt.namespaced
        && let Some(m) = metadata.as_object_mut()
    {
        m.remove("namespace");
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let generate = metadata
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let checked_name = match (&name, &generate) {
        (Some(n), _) => n.clone(),
        (None, Some(prefix)) => format!("{prefix}x"),
        (None, None) => {
            return Err(Status::invalid(
                &rt.kind,
                &rt.group,
                "",
                &[(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
    };
    if !defaults::is_dns1123_subdomain(&checked_name) {
        return Err(Status::invalid_name(
            rt,
            name.as_deref().unwrap_or(&checked_name),
        ));
    }
    defaults::validate(rt, &checked_name, obj)?;
    if opts_strict {
        defaults::reject_unknown_fields(rt, obj)?;
    }
    Ok(name.or(generate).unwrap_or_default())
}

/// Whether a write may leave parts of the stored object as bytes (a partial write or the
/// label/annotation fast path): not a dry run or a strict one (they need the whole object),
/// not to a CRD or a namespace (their writes have side effects on the whole), not a scale.
fn partial_write_allowed(rt: &ResourceType, sub: Subresource, opts: &WriteOptions) -> bool {
    let namespace = rt.group.is_empty() && rt.plural == "namespaces";
    !(opts.dry_run
        || is_strict(opts)
        || is_crd(rt)
        || namespace
        || sub == Subresource::Scale
        || !partial_writes_enabled())
}

/// `fieldValidation=Strict` (what kubectl sends for create, apply, replace and edit).
fn is_strict(opts: &WriteOptions) -> bool {
    opts.field_validation.as_deref() == Some("Strict")
}

fn without_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut copy = obj.clone();
    if rt.status_subresource
        && let Some(map) = copy.as_object_mut()
    {
        map.remove("status");
    }
    copy
}

fn set_or_remove(obj: &mut Value, key: &str, value: Option<&Value>) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match value {
        Some(v) => {
            map.insert(key.into(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// Copies what only the server may set from the stored object into the new one.
fn restore_server_fields(rt: &ResourceType, new: &mut Value, old: &Value) {
    let map = new.as_object_mut().expect("checked to be an object");
    map.insert(
        "kind".into(),
        old.get("kind").cloned().unwrap_or_else(|| json!(rt.kind)),
    );
    map.insert(
        "apiVersion".into(),
        old.get("apiVersion")
            .cloned()
            .unwrap_or_else(|| json!(rt.api_version())),
    );
    let metadata = map.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let metadata = metadata.as_object_mut().expect("made an object above");
    let empty = Map::new();
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for field in SERVER_METADATA.iter().chain(&["resourceVersion"]) {
        let before = old_meta.get(*field);
        // Most writes carry these unchanged (a patch starts from the stored object); comparing
        // is much cheaper than copying managedFields again.
        if metadata.get(*field) == before {
            continue;
        }
        match before {
            Some(v) => {
                metadata.insert((*field).to_string(), v.clone());
            }
            None => {
                metadata.remove(*field);
            }
        }
    }
}

/// Whether anything but metadata and status differs (what bumps metadata.generation).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let is_body = |key: &String| !matches!(key.as_str(), "metadata" | "status");
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let old_keys = old.keys().filter(|k| is_body(k)).count();
    let new_keys = new.keys().filter(|k| is_body(k)).count();
    old_keys != new_keys
        || new
            .iter()
            .filter(|(k, _)| is_body(k))
            .any(|(k, v)| old.get(k) != Some(v))
}

/// The autoscaling/v1 Scale view of a scalable object.
pub(crate) fn scale_of(rt: &ResourceType, obj: &Value) -> Result<Value, Status> {
    if !rt.scale_subresource {
        return Err(super::state::unknown_resource());
    }
    let metadata = &obj["metadata"];
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        });
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0))},
    });
    if let Some(selector) = selector {
        scale["status"]["selector"] = json!(selector);
    }
    Ok(scale)
}

#[cfg(not(test))]
fn partial_writes_enabled() -> bool {
    true
}

#[cfg(test)]
thread_local! {
    /// Tests turn partial writes off to compare them with the general path.
    pub(super) static PARTIAL_WRITES: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    /// Patches that took the partial path (or the fast path) on this thread.
    pub(super) static PARTIAL_WRITES_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Patches that took the label/annotation fast path on this thread.
    pub(super) static FAST_PATCHES_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn partial_writes_enabled() -> bool {
    PARTIAL_WRITES.with(std::cell::Cell::get)
}
