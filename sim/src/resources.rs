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

use crate::cluster_state::ClusterState;
use crate::faults::{forbidden_status, watch_list_disabled_status};
use crate::list_body::{self, ItemForm};
use crate::negotiation::{Endpoint, Representation, negotiate, patch_type};
use crate::partial_metadata;
use crate::pod_subresources::{self, PodSubresourceRequest, SubresourceAnswer};
use crate::query::Query;
use crate::request_info::{ResourceRequest, Verb};
use crate::response::{self, Body, json_bytes, status, with_content_type};
use crate::store::{
    ClusterStore, DeleteOutcome, PatchType, ResourceType, Status, StoredObject, Subresource,
    WriteOptions,
};
use crate::table::{self, Column, IncludeObject};
use crate::watch_stream::{self, WatchEncoding, WatchSource};

/// Bodies larger than this are refused (the real server's limit is 3 MiB per object).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Kinds whose DELETE answers the object rather than a Status (registry `ReturnDeletedObject`).
const RETURN_DELETED_OBJECT: [(&str, &str); 1] = [("", "pods")];

pub(crate) async fn serve(
    state: Arc<ClusterState>,
    request: Request<Incoming>,
    req: ResourceRequest,
    query: Query,
    shutdown: CancellationToken,
) -> Response<Body> {
    let store = state.store();
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
    let extra = req
        .subresource
        .as_deref()
        .and_then(|name| pod_subresources::find(&rt, name));
    let sub = match req.subresource.as_deref() {
        None => Subresource::Main,
        Some("status") if rt.status_subresource => Subresource::Status,
        Some("scale") if rt.scale_subresource => Subresource::Scale,
        // Its own verbs are checked when it is served.
        Some(_) if extra.is_some() && req.name.is_some() => Subresource::Main,
        Some(_) => return status(&response::unknown_resource()),
    };
    if extra.is_none()
        && let Err(failure) = method_allowed(&rt, &req, sub)
    {
        return status(&failure);
    }
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let agent = user_agent
        .as_deref()
        .unwrap_or(crate::counters::NO_USER_AGENT);
    match req.verb {
        Verb::List => state.counters.count_list(&rt.plural),
        Verb::Watch => state.counters.count_watch(&rt.plural, agent),
        _ => {}
    }
    let faults = &state.faults;
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
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let raw_query = request.uri().query().map(str::to_string);
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
        agent,
    };
    let namespace = req.namespace.as_deref();
    if let Some(spec) = extra {
        let sub_request = PodSubresourceRequest {
            store: &store,
            pods: &rt,
            namespace,
            name: req.name.as_deref().unwrap_or_default(),
            spec,
            verb: req.verb,
            query: &query,
            raw_query: raw_query.as_deref(),
            content_type: content_type.as_deref(),
            body: &body,
            upgrade,
            field_manager: Some(default_field_manager(user_agent.as_deref())),
        };
        return match pod_subresources::serve(&sub_request) {
            Ok(SubresourceAnswer::Object(object)) => ctx.object(StatusCode::OK, &object),
            Ok(SubresourceAnswer::Created) => {
                response::json_value(StatusCode::CREATED, &response::created_success())
            }
            Ok(SubresourceAnswer::Text(text)) => {
                with_content_type(StatusCode::OK, "text/plain", response::full(text))
            }
            Err(failure) => status(&failure),
        };
    }
    let result = match req.verb {
        Verb::Get => store
            .get(&rt, namespace, req.name.as_deref().unwrap_or_default(), sub)
            .map(|o| ctx.object(StatusCode::OK, &o)),
        Verb::List => ctx.list(),
        Verb::Watch => ctx.watch(&state, shutdown),
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
                .and_then(|outcomes| ctx.deleted_collection(outcomes))
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
        Verb::List | Verb::DeleteCollection => !has_name && sub == Subresource::Main,
        // A name comes only with the legacy `/watch/<resource>/<name>` path.
        Verb::Watch => sub == Subresource::Main,
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
    /// The request's User-Agent ([`crate::counters::NO_USER_AGENT`] when it sent none).
    agent: &'a str,
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

    /// An object answer (get, writes, a deleted object) in the negotiated representation.
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
            Representation::PartialObjectMetadata => {
                json_bytes(code, partial_metadata::object(&object.json))
            }
            Representation::PartialObjectMetadataList => {
                status(&partial_metadata::list_kind_on_an_object(self.rt))
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
        let items: Vec<&StoredObject> = page.items.iter().map(|o| o.as_ref()).collect();
        self.list_answer(&items, &metadata)
    }

    /// A list answer (list, deletecollection) in the negotiated representation.
    fn list_answer(
        &self,
        items: &[&StoredObject],
        metadata: &Value,
    ) -> Result<Response<Body>, Status> {
        let rt = self.rt;
        Ok(match self.representation {
            Representation::Table => json_bytes(
                StatusCode::OK,
                table::render(
                    &self.table_columns(),
                    items,
                    self.include_object(),
                    metadata,
                    true,
                ),
            ),
            Representation::PartialObjectMetadata => {
                return Err(partial_metadata::object_kind_on_a_list(rt));
            }
            Representation::PartialObjectMetadataList => json_bytes(
                StatusCode::OK,
                list_body::render(
                    partial_metadata::LIST_KIND,
                    partial_metadata::API_VERSION,
                    metadata,
                    items,
                    ItemForm::Metadata,
                ),
            ),
            Representation::Yaml => {
                let form = ItemForm::of(rt);
                let items: Vec<Value> = items
                    .iter()
                    .map(|o| list_body::item_value(o, form))
                    .collect();
                let list = json!({"apiVersion": rt.api_version(), "items": items, "kind": rt.list_kind, "metadata": metadata});
                yaml(StatusCode::OK, &list)
            }
            Representation::Json | Representation::AggregatedDiscovery => json_bytes(
                StatusCode::OK,
                list_body::render(
                    &rt.list_kind,
                    &rt.api_version(),
                    metadata,
                    items,
                    ItemForm::of(rt),
                ),
            ),
        })
    }

    fn watch(
        &self,
        state: &ClusterState,
        shutdown: CancellationToken,
    ) -> Result<Response<Body>, Status> {
        let mut options = self.query.watch_options();
        if options.send_initial_events.is_some() && state.faults.watch_list_refused() {
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
        if self.representation == Representation::PartialObjectMetadataList {
            return Err(partial_metadata::list_kind_on_an_object(self.rt));
        }
        let encoding = WatchEncoding {
            resource: self.rt.clone(),
            table: (self.representation == Representation::Table)
                .then(|| (self.table_columns(), self.include_object())),
            metadata_only: self.representation == Representation::PartialObjectMetadata,
        };
        let guard = state.counters.open_watch(&self.rt.plural, self.agent);
        let source = if let Some(ended) = state.faults.watch_stall() {
            WatchSource::Stalled { ended }
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
        let partition = watch_stream::PartitionProbe {
            faults: state.faults.clone(),
            agent: self.agent.to_string(),
        };
        Ok(watch_stream::respond(
            source, encoding, guard, partition, shutdown,
        ))
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

    fn deleted_collection(&self, outcomes: Vec<DeleteOutcome>) -> Result<Response<Body>, Status> {
        let items: Vec<Arc<StoredObject>> = outcomes
            .into_iter()
            .map(|o| match o {
                DeleteOutcome::Deleted(obj) | DeleteOutcome::Pending(obj) => obj,
            })
            .collect();
        let items: Vec<&StoredObject> = items.iter().map(|o| o.as_ref()).collect();
        let metadata = json!({"resourceVersion": self.store.resource_version().to_string()});
        self.list_answer(&items, &metadata)
    }
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
