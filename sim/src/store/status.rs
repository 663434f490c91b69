//! Builders for the `metav1.Status` failures a real kube-apiserver v1.28 answers with.
//!
//! Every message is copied from a recorded response in
//! `shared/fixtures/apiserver-v1.28/status/` and `gone/`, so clients that match on reason or
//! wording (kubectl, client-go's `IsConflict`, kube-rs watchers) behave as against a real server.

use serde_json::{Value, json};

use super::{ResourceType, Status};

/// The RFC 1123 subdomain rule, worded as apimachinery's `IsDNS1123Subdomain`.
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

impl Status {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Status {
        Status {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
            metadata: None,
        }
    }

    /// 404 `pods "missing" not found` (details name the plural, as the real server does).
    pub fn not_found(rt: &ResourceType, name: &str) -> Status {
        let mut status = Status::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_plural(rt)),
        );
        status.details = Some(item_details(rt, name));
        status
    }

    /// 404 for a namespace that does not exist when creating inside it.
    pub fn namespace_not_found(namespace: &str) -> Status {
        let mut status = Status::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        );
        status.details = Some(json!({"name": namespace, "kind": "namespaces"}));
        status
    }

    /// 409 AlreadyExists on create.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Status {
        let mut status = Status::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified_plural(rt)),
        );
        status.details = Some(item_details(rt, name));
        status
    }

    /// 409 Conflict: the write carried a stale resourceVersion (or a failed precondition).
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Status {
        let mut status = Status::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_plural(rt)
            ),
        );
        status.details = Some(item_details(rt, name));
        status
    }

    /// The wording of a stale-resourceVersion conflict.
    pub fn stale_conflict(rt: &ResourceType, name: &str) -> Status {
        Status::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid with one cause per `(field, reason, message)`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[(&str, &str, String)]) -> Status {
        let summary = if causes.len() == 1 {
            format!("{}: {}", causes[0].0, causes[0].2)
        } else {
            let parts: Vec<String> = causes
                .iter()
                .map(|(field, _, msg)| format!("{field}: {msg}"))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut status = Status::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
        );
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, reason, msg)| json!({"reason": reason, "message": msg, "field": field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        if name.is_empty() {
            details.as_object_mut().map(|d| d.remove("name"));
        }
        status.details = Some(details);
        status
    }

    /// 422 for a name that is not an RFC 1123 subdomain.
    pub fn invalid_name(rt: &ResourceType, name: &str) -> Status {
        Status::invalid(
            &rt.kind,
            &rt.group,
            name,
            &[(
                "metadata.name",
                "FieldValueInvalid",
                format!("Invalid value: \"{name}\": {DNS1123_SUBDOMAIN_MESSAGE}"),
            )],
        )
    }

    /// 422 for a required field that is missing.
    pub fn required(rt: &ResourceType, name: &str, field: &str) -> Status {
        Status::invalid(
            &rt.kind,
            &rt.group,
            name,
            &[(field, "FieldValueRequired", "Required value".to_string())],
        )
    }

    /// 422 `fieldManager: Required value: is required for apply patch`.
    pub fn apply_needs_field_manager() -> Status {
        Status::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[(
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch".to_string(),
            )],
        )
    }

    /// 422 `sendInitialEvents` on a plain list (plus the resourceVersionMatch cause when it applies).
    pub fn send_initial_events_on_list(resource_version_match_without_rv: bool) -> Status {
        let mut causes = Vec::new();
        if resource_version_match_without_rv {
            causes.push((
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                    .to_string(),
            ));
        }
        causes.push((
            "sendInitialEvents",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents is forbidden for list".to_string(),
        ));
        Status::invalid("ListOptions", "meta.k8s.io", "", &causes)
    }

    /// 422 for `resourceVersionMatch` without `resourceVersion` on a list.
    pub fn resource_version_match_without_rv() -> Status {
        Status::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[(
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                    .to_string(),
            )],
        )
    }

    /// 422 for `resourceVersionMatch=Exact` with `resourceVersion=0` on a list.
    pub fn exact_match_at_zero() -> Status {
        Status::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[(
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
                    .to_string(),
            )],
        )
    }

    /// 422 for a WatchList request without `resourceVersionMatch=NotOlderThan`.
    pub fn send_initial_events_needs_not_older_than() -> Status {
        Status::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            &[(
                "resourceVersionMatch",
                "FieldValueForbidden",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_string(),
            )],
        )
    }

    /// 400 BadRequest with a free message.
    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::new(400, "BadRequest", message)
    }

    /// 400 for a body that is not JSON (or YAML for apply) of the expected kind.
    pub fn bad_body(rt: &ResourceType, error: &str) -> Status {
        Status::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {error}",
            rt.kind
        ))
    }

    /// 410 Expired on a watch resumed from before the watch cache window.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Status {
        Status::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 410 Expired for a list at an exact resourceVersion that is no longer kept.
    pub fn list_rv_too_old() -> Status {
        Status::new(
            410,
            "Expired",
            "The resourceVersion for the provided list is too old.",
        )
    }

    /// 410 Expired for a continue token whose snapshot is gone, with the inconsistent
    /// continuation token a real server offers in `metadata.continue`.
    pub fn continue_expired(fresh_continue: String) -> Status {
        let mut status = Status::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        );
        status.metadata = Some(json!({"continue": fresh_continue}));
        status
    }

    /// 504 Timeout: a resourceVersion the store has not reached yet.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Status {
        let mut status = Status::new(
            504,
            "Timeout",
            format!("Timeout: Too large resource version: {requested}, current: {current}"),
        );
        status.details = Some(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }));
        status
    }

    /// 403 for a create inside a namespace that is being deleted (the NamespaceLifecycle
    /// admission plugin: `admission.NewForbidden` plus a `NamespaceTerminating` cause).
    /// `name` is empty for a create by `generateName` (admission runs before the name is
    /// generated), and the message then names no object.
    pub fn namespace_terminating(rt: &ResourceType, name: &str, namespace: &str) -> Status {
        let object = if name.is_empty() {
            qualified_plural(rt)
        } else {
            format!("{} \"{name}\"", qualified_plural(rt))
        };
        let mut status = Status::new(
            403,
            "Forbidden",
            format!(
                "{object} is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        let mut details = item_details(rt, name);
        if name.is_empty() {
            details.as_object_mut().map(|d| d.remove("name"));
        }
        details["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {namespace} is being terminated"),
            "field": "metadata.namespace",
        }]);
        status.details = Some(details);
        status
    }

    /// 403 for deleting `default`, `kube-system` or `kube-public`.
    pub fn namespace_may_not_be_deleted(name: &str) -> Status {
        let mut status = Status::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        );
        status.details = Some(json!({"name": name, "kind": "namespaces"}));
        status
    }

    /// 405 for a verb the resource (or subresource) does not serve.
    pub fn method_not_allowed() -> Status {
        let mut status = Status::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        );
        status.details = Some(json!({}));
        status
    }
}

/// `pods`, or `deployments.apps` for a non-core group, as resource errors name them.
fn qualified_plural(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

fn item_details(rt: &ResourceType, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    details
}
