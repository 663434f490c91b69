//! Serving resource requests against the store, as the apiserver's REST handlers do
//! (k8s.io/apiserver/pkg/endpoints/handlers): resolve the resource (unknown group version →
//! text 404, unknown resource → Status 404), refuse methods the endpoint does not have (405),
//! apply the cluster's faults, negotiate the representation (JSON, YAML, Table; else 406),
//! then get / list / watch / create / update / patch / delete / deletecollection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterShared;
use crate::faults::{forbidden_status, watch_list_disabled_status};
use crate::negotiation::{Endpoint, Representation, negotiate};
use crate::query::Query;
use crate::request_info::{ResourceRequest, Verb};
use crate::response::{self, Body, json_bytes, status, with_content_type};
use crate::store::{
    ClusterStore, DeleteOutcome, ListPage, PatchType, ResourceType, Status, StoredObject,
    Subresource, WriteOptions,
};
use crate::table::{self, Column, IncludeObject};
use crate::watch_stream::{self, WatchEncoding, WatchSource};

/// Bodies larger than this are refused (the real server's limit is 3 MiB per object).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Kinds whose DELETE answers the object rather than a Status (registry `ReturnDeletedObject`).
const RETURN_DELETED_OBJECT: [(&str, &str); 1] = [("", "pods")];

pub(crate) async fn serve(
    shared: Arc<ClusterShared>,
    request: Request<Incoming>,
    req: ResourceRequest,
    query: Query,
    shutdown: CancellationToken,
) -> Response<Body> {
    let store = shared.store();
    let resources = store.resources();
    if !crate::discovery::serves_group_version(&resources, &req.group, &req.version) {
        return response::page_not_found();
    }
    let Some(rt) = store.resolve(&req.group, &req.version, &req.resource) else {
        return status(&response::unknown_resource());
    };
    if !rt.namespaced && req.namespace.is_some() {
        return status(&response::unknown_resource());
    }
    let sub = match req.subresource.as_deref() {
        None => Subresource::Main,
        Some("status") if rt.status_subresource => Subresource::Status,
        Some("scale") if rt.scale_subresource => Subresource::Scale,
        Some(_) => return status(&response::unknown_resource()),
    };
    if let Err(failure) = method_allowed(&rt, &req, sub) {
        return status(&failure);
    }
    match req.verb {
        Verb::List => shared.counters.count_list(&rt.plural),
        Verb::Watch => shared.counters.count_watch(&rt.plural),
        _ => {}
    }
    let faults = &shared.faults;
    if faults.is_forbidden(&rt.plural) {
        let forbidden = forbidden_status(
            crate::auth::ADMIN_USER,
            req.verb.as_str(),
            &rt.group,
            &rt.plural,
            req.subresource.as_deref(),
            req.namespace.as_deref(),
            req.name.as_deref(),
        );
        return status(&forbidden);
    }
    if let Some(failure) = faults.injected_failure() {
        return status(&failure);
    }
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(representation) = negotiate(accept.as_deref(), Endpoint::Resource) else {
        return status(&response::not_acceptable());
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match read_body(request.into_body()).await {
        Ok(body) => body,
        Err(failure) => return status(&failure),
    };
    let ctx = Ctx {
        store: &store,
        rt: &rt,
        req: &req,
        query: &query,
        representation,
        sub,
    };
    let namespace = req.namespace.as_deref();
    let result = match req.verb {
        Verb::Get => store
            .get(&rt, namespace, req.name.as_deref().unwrap_or_default(), sub)
            .map(|o| ctx.object(StatusCode::OK, &o)),
        Verb::List => ctx.list(),
        Verb::Watch => ctx.watch(&shared, shutdown),
        Verb::Create => ctx.decode(content_type.as_deref(), &body).and_then(|obj| {
            store
                .create(
                    &rt,
                    namespace,
                    obj,
                    &ctx.write_options(user_agent.as_deref(), false),
                )
                .map(|o| ctx.object(StatusCode::CREATED, &o))
        }),
        Verb::Update => ctx.decode(content_type.as_deref(), &body).and_then(|obj| {
            let name = req.name.as_deref().unwrap_or_default();
            store
                .update(
                    &rt,
                    namespace,
                    name,
                    sub,
                    obj,
                    &ctx.write_options(user_agent.as_deref(), false),
                )
                .map(|o| ctx.object(StatusCode::OK, &o))
        }),
        Verb::Patch => patch_type(content_type.as_deref()).and_then(|patch_type| {
            let name = req.name.as_deref().unwrap_or_default();
            let opts = ctx.write_options(user_agent.as_deref(), patch_type == PatchType::Apply);
            // An apply that creates answers 201 (managedfields/5-ssa-create.json).
            let creates = patch_type == PatchType::Apply
                && sub == Subresource::Main
                && store.get(&rt, namespace, name, sub).is_err();
            let code = if creates {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            store
                .patch(&rt, namespace, name, sub, patch_type, &body, &opts)
                .map(|o| ctx.object(code, &o))
        }),
        Verb::Delete => query.delete_options(&body).and_then(|opts| {
            let name = req.name.as_deref().unwrap_or_default();
            store
                .delete(&rt, namespace, name, &opts)
                .map(|outcome| ctx.deleted(outcome))
        }),
        Verb::DeleteCollection => query.delete_options(&body).and_then(|opts| {
            store
                .delete_collection(&rt, namespace, &query.list_options(), &opts)
                .map(|outcomes| ctx.deleted_collection(outcomes))
        }),
        Verb::Other => Err(response::method_not_allowed()),
    };
    result.unwrap_or_else(|failure| status(&failure))
}

/// 405 for methods an endpoint does not have (status/405-*.json).
fn method_allowed(
    rt: &ResourceType,
    req: &ResourceRequest,
    sub: Subresource,
) -> Result<(), Status> {
    let has_name = req.name.is_some();
    let allowed = match req.verb {
        Verb::Get | Verb::Update | Verb::Patch => has_name,
        Verb::List | Verb::Watch | Verb::DeleteCollection => !has_name && sub == Subresource::Main,
        Verb::Create => !has_name,
        Verb::Delete => sub == Subresource::Main,
        Verb::Other => false,
    };
    let verb_served = sub != Subresource::Main || rt.verbs.iter().any(|v| v == req.verb.as_str());
    if allowed && verb_served {
        Ok(())
    } else {
        Err(response::method_not_allowed())
    }
}

fn patch_type(content_type: Option<&str>) -> Result<PatchType, Status> {
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    match media {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(response::unsupported_media_type()),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Status> {
    let bytes = body
        .collect()
        .await
        .map_err(|e| response::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Status {
            code: 413,
            reason: "RequestEntityTooLarge".into(),
            message: "Request entity too large: limit is 3145728".into(),
            details: None,
            metadata: None,
        });
    }
    Ok(bytes)
}

/// The server's field manager when the request names none: the User-Agent's product
/// (`kubectl/v1.28.15 (...)` → `kubectl`), as `managerOrUserAgent` does.
pub fn default_field_manager(user_agent: Option<&str>) -> String {
    let product = user_agent
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .trim();
    if product.is_empty() {
        "unknown".to_string()
    } else {
        product.chars().take(128).collect()
    }
}

/// One request's context, for the verb handlers.
struct Ctx<'a> {
    store: &'a ClusterStore,
    rt: &'a Arc<ResourceType>,
    req: &'a ResourceRequest,
    query: &'a Query,
    representation: Representation,
    sub: Subresource,
}

impl Ctx<'_> {
    fn write_options(&self, user_agent: Option<&str>, apply: bool) -> WriteOptions {
        // Server-side apply requires an explicit manager (managedfields/7-ssa-no-fieldmanager-422.json).
        let default = (!apply).then(|| default_field_manager(user_agent));
        self.query.write_options(default)
    }

    /// A create/update body: JSON, or YAML when sent as application/yaml.
    fn decode(&self, content_type: Option<&str>, body: &[u8]) -> Result<Value, Status> {
        let media = content_type
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let unrecognized = |e: String| {
            let head: String = String::from_utf8_lossy(&body[..body.len().min(30)]).into_owned();
            response::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e} ({head} ...)",
                self.rt.kind
            ))
        };
        match media.as_str() {
            "application/json" | "" => {
                serde_json::from_slice(body).map_err(|e| unrecognized(e.to_string()))
            }
            "application/yaml" => {
                serde_yaml::from_slice(body).map_err(|e| unrecognized(e.to_string()))
            }
            _ => Err(response::unsupported_media_type()),
        }
    }

    fn crd_columns(&self) -> Option<Value> {
        let crd_type =
            self.store
                .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")?;
        // CRD groups always contain a dot; this skips the lookup for core, apps, batch, ...
        if !self.rt.group.contains('.') {
            return None;
        }
        let crd = self
            .store
            .get(
                &crd_type,
                None,
                &format!("{}.{}", self.rt.plural, self.rt.group),
                Subresource::Main,
            )
            .ok()?;
        let crd = crd.value();
        let version = crd["spec"]["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == self.rt.version.as_str())?;
        let columns = version
            .get("additionalPrinterColumns")
            .cloned()
            .unwrap_or_else(|| json!([]));
        // Every CR table ends with Age unless the CRD names its own columns (apiextensions defaulting).
        let mut columns = columns.as_array().cloned().unwrap_or_default();
        if columns.is_empty() {
            columns.push(
                json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
            );
        }
        Some(Value::Array(columns))
    }

    fn table_columns(&self) -> Vec<Column> {
        table::columns_for(self.rt, self.crd_columns().as_ref())
    }

    fn include_object(&self) -> IncludeObject {
        IncludeObject::parse(self.query.include_object.as_deref())
    }

    fn object(&self, code: StatusCode, object: &StoredObject) -> Response<Body> {
        match self.representation {
            Representation::Table if self.sub == Subresource::Main => {
                let metadata = json!({"resourceVersion": object.resource_version.to_string()});
                json_bytes(
                    code,
                    table::render(
                        &self.table_columns(),
                        &[object],
                        self.include_object(),
                        &metadata,
                        true,
                    ),
                )
            }
            Representation::Yaml => yaml(code, &object.value()),
            _ => json_bytes(code, object.json.clone()),
        }
    }

    fn list(&self) -> Result<Response<Body>, Status> {
        if self.query.send_initial_events.is_some() {
            return Err(send_initial_events_on_list(self.query));
        }
        let page = self.store.list(
            self.rt,
            self.req.namespace.as_deref(),
            &self.query.list_options(),
        )?;
        let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
        if let Some(token) = &page.continue_token {
            metadata["continue"] = json!(token);
        }
        if let Some(remaining) = page.remaining_item_count {
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(match self.representation {
            Representation::Table => {
                let objects: Vec<&StoredObject> = page.items.iter().map(|o| o.as_ref()).collect();
                json_bytes(
                    StatusCode::OK,
                    table::render(
                        &self.table_columns(),
                        &objects,
                        self.include_object(),
                        &metadata,
                        true,
                    ),
                )
            }
            Representation::Yaml => {
                let items: Vec<Value> = page.items.iter().map(|o| o.value()).collect();
                let list = json!({"apiVersion": self.rt.api_version(), "items": items, "kind": self.rt.list_kind, "metadata": metadata});
                yaml(StatusCode::OK, &list)
            }
            _ => json_bytes(StatusCode::OK, list_json(self.rt, &page, &metadata)),
        })
    }

    fn watch(
        &self,
        shared: &ClusterShared,
        shutdown: CancellationToken,
    ) -> Result<Response<Body>, Status> {
        let mut options = self.query.watch_options();
        if options.send_initial_events.is_some() && shared.faults.watch_list_refused() {
            return Err(watch_list_disabled_status());
        }
        if let Some(name) = &self.req.name {
            // The legacy `/watch/<resource>/<name>` form watches one object.
            let by_name = format!("metadata.name={name}");
            options.field_selector = Some(match options.field_selector.take() {
                Some(existing) => format!("{existing},{by_name}"),
                None => by_name,
            });
        }
        let encoding = WatchEncoding {
            resource: self.rt.clone(),
            table: (self.representation == Representation::Table)
                .then(|| (self.table_columns(), self.include_object())),
        };
        let guard = shared.counters.open_watch(&self.rt.plural);
        let source = if shared.faults.watches_stalled() {
            WatchSource::Stalled
        } else {
            let watch = self
                .store
                .watch(self.rt, self.req.namespace.as_deref(), &options)?;
            WatchSource::Live {
                watch,
                timeout: self
                    .query
                    .timeout
                    .map(|t| t.min(Duration::from_secs(24 * 3600))),
            }
        };
        Ok(watch_stream::respond(source, encoding, guard, shutdown))
    }

    fn deleted(&self, outcome: DeleteOutcome) -> Response<Body> {
        let returns_object =
            RETURN_DELETED_OBJECT.contains(&(self.rt.group.as_str(), self.rt.plural.as_str()));
        match outcome {
            DeleteOutcome::Pending(object) => self.object(StatusCode::OK, &object),
            DeleteOutcome::Deleted(object) if returns_object => {
                self.object(StatusCode::OK, &object)
            }
            DeleteOutcome::Deleted(object) => {
                let value = object.value();
                let uid = value["metadata"]["uid"].as_str();
                response::json_value(
                    StatusCode::OK,
                    &response::delete_success(&self.rt.group, &self.rt.plural, object.name(), uid),
                )
            }
        }
    }

    fn deleted_collection(&self, outcomes: Vec<DeleteOutcome>) -> Response<Body> {
        let items: Vec<Arc<StoredObject>> = outcomes
            .into_iter()
            .map(|o| match o {
                DeleteOutcome::Deleted(obj) | DeleteOutcome::Pending(obj) => obj,
            })
            .collect();
        let page = ListPage {
            items,
            resource_version: self.store.resource_version(),
            continue_token: None,
            remaining_item_count: None,
        };
        let metadata = json!({"resourceVersion": page.resource_version.to_string()});
        json_bytes(StatusCode::OK, list_json(self.rt, &page, &metadata))
    }
}

/// A `<Kind>List` with the items' cached JSON spliced in.
pub fn list_json(rt: &ResourceType, page: &ListPage, metadata: &Value) -> Vec<u8> {
    let payload: usize = page.items.iter().map(|o| o.json.len() + 1).sum();
    let mut out = Vec::with_capacity(payload + 256);
    out.extend_from_slice(b"{\"kind\":");
    out.extend_from_slice(&serde_json::to_vec(&rt.list_kind).unwrap_or_default());
    out.extend_from_slice(b",\"apiVersion\":");
    out.extend_from_slice(&serde_json::to_vec(&rt.api_version()).unwrap_or_default());
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(&serde_json::to_vec(metadata).unwrap_or_default());
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    out
}

fn yaml(code: StatusCode, value: &Value) -> Response<Body> {
    match serde_yaml::to_string(value) {
        Ok(text) => with_content_type(code, "application/yaml", response::full(text)),
        Err(e) => status(&Status {
            code: 500,
            reason: "InternalError".into(),
            message: format!("encoding YAML: {e}"),
            details: None,
            metadata: None,
        }),
    }
}

/// status/422-sendInitialEvents-on-list.json: `sendInitialEvents` is for watches only.
fn send_initial_events_on_list(query: &Query) -> Status {
    let mut causes = Vec::new();
    if query.resource_version_match.is_some() && query.resource_version.is_none() {
        causes.push((
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    causes.push((
        "sendInitialEvents",
        "Forbidden: sendInitialEvents is forbidden for list",
    ));
    let summary: Vec<String> = causes
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect();
    let summary = if summary.len() == 1 {
        summary[0].clone()
    } else {
        format!("[{}]", summary.join(", "))
    };
    Status {
        code: 422,
        reason: "Invalid".into(),
        message: format!("ListOptions.meta.k8s.io \"\" is invalid: {summary}"),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": causes.iter().map(|(field, message)| json!({"reason": "FieldValueForbidden", "message": message, "field": field})).collect::<Vec<_>>()
        })),
        metadata: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_manager_defaults_to_the_user_agent_product() {
        assert_eq!(
            default_field_manager(Some("kubectl/v1.28.15 (linux/amd64) kubernetes/8418565")),
            "kubectl"
        );
        assert_eq!(default_field_manager(Some("kube-rs/5.0")), "kube-rs");
        assert_eq!(default_field_manager(None), "unknown");
    }

    #[test]
    fn patch_types_by_content_type() {
        assert_eq!(
            patch_type(Some("application/merge-patch+json")),
            Ok(PatchType::Merge)
        );
        assert_eq!(
            patch_type(Some("application/apply-patch+yaml; charset=utf-8")),
            Ok(PatchType::Apply)
        );
        assert_eq!(patch_type(Some("text/plain")).map_err(|s| s.code), Err(415));
    }

    #[test]
    fn send_initial_events_on_list_matches_the_fixture_message() {
        let query = Query::parse(Some(
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        ))
        .expect("valid");
        let status = send_initial_events_on_list(&query);
        assert_eq!(
            status.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided, sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list]"
        );
    }
}
