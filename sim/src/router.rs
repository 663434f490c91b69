//! The entry point of every request, in the apiserver's filter order: count it, decode the
//! query, authenticate (401/403), then serve non-resource paths (`/version`, health checks,
//! discovery, OpenAPI) here and resource requests in [`crate::resources`].

use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::auth::{Identity, anonymous_may_read, authenticate, forbidden_path};
use crate::cluster_state::ClusterState;
use crate::discovery;
use crate::faults::forbidden_status;
use crate::negotiation::{AGGREGATED_DISCOVERY_CONTENT_TYPE, Endpoint, Representation, negotiate};
use crate::query::Query;
use crate::request_info::RequestInfo;
use crate::response::{self, Body, json_value, page_not_found, status, text_ok};

/// Serves one request of a cluster.
pub(crate) async fn handle(
    state: Arc<ClusterState>,
    request: Request<Incoming>,
    shutdown: CancellationToken,
) -> Response<Body> {
    state.counters.count_request();
    let query = match Query::parse(request.uri().query()) {
        Ok(query) => query,
        Err(failure) => return status(&failure),
    };
    let path = request.uri().path().to_string();
    let info = RequestInfo::parse(request.method(), &path, query.watch);
    let identity = match authenticate(request.headers(), &state.token, state.anonymous_auth) {
        Ok(identity) => identity,
        Err(failure) => return status(&failure),
    };
    if identity == Identity::Anonymous {
        match &info {
            RequestInfo::NonResource { path } if anonymous_may_read(path) => {}
            RequestInfo::Resource(r) => {
                let verb = r.verb.as_str();
                let forbidden = forbidden_status(
                    identity.user_name(),
                    verb,
                    &r.group,
                    &r.resource,
                    r.subresource.as_deref(),
                    r.namespace.as_deref(),
                    r.name.as_deref(),
                );
                return status(&forbidden);
            }
            _ => {
                return status(&forbidden_path(
                    identity.user_name(),
                    &request.method().as_str().to_lowercase(),
                    &path,
                ));
            }
        }
    }
    match info {
        RequestInfo::NonResource { path } => non_resource(&state, &request, &path),
        RequestInfo::GroupVersion { group, version } => {
            let resources = state.store().resources();
            match discovery::api_resource_list(&resources, &group, &version) {
                Some(doc) => json_with(&request, Endpoint::Other, &doc),
                None => page_not_found(),
            }
        }
        RequestInfo::Resource(resource) => {
            crate::resources::serve(state, request, resource, query, shutdown).await
        }
    }
}

fn accept(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

/// A JSON document after checking Accept (406 when JSON is not acceptable).
fn json_with(
    request: &Request<Incoming>,
    endpoint: Endpoint,
    doc: &serde_json::Value,
) -> Response<Body> {
    match negotiate(accept(request), endpoint) {
        Some(_) => json_value(StatusCode::OK, doc),
        None => status(&response::not_acceptable()),
    }
}

fn non_resource(state: &ClusterState, request: &Request<Incoming>, path: &str) -> Response<Body> {
    let path = path.trim_end_matches('/');
    if path.starts_with("/openapi/")
        && let Some(response) = crate::openapi::serve(path, &state.store(), state.kubernetes_minor)
    {
        return response;
    }
    match path {
        "/version" => json_value(StatusCode::OK, &discovery::version(state.kubernetes_minor)),
        // `/healthz/ping`, `/readyz/etcd`, ... : every individual check passes too.
        p if ["/healthz", "/readyz", "/livez"]
            .iter()
            .any(|h| p == *h || p.starts_with(&format!("{h}/"))) =>
        {
            text_ok("ok")
        }
        "/api" | "/apis" => {
            let resources = state.store().resources();
            let core = path == "/api";
            match negotiate(accept(request), Endpoint::DiscoveryRoot) {
                Some(Representation::AggregatedDiscovery) => {
                    let body = serde_json::to_vec(&discovery::aggregated(&resources, core))
                        .unwrap_or_default();
                    let mut response = response::with_content_type(
                        StatusCode::OK,
                        AGGREGATED_DISCOVERY_CONTENT_TYPE,
                        response::full(body),
                    );
                    response
                        .headers_mut()
                        .insert(header::VARY, http::HeaderValue::from_static("Accept"));
                    response
                }
                Some(_) if core => json_value(
                    StatusCode::OK,
                    &discovery::api_versions(&state.addr.to_string()),
                ),
                Some(_) => json_value(StatusCode::OK, &discovery::api_group_list(&resources)),
                None => status(&response::not_acceptable()),
            }
        }
        _ => match path.strip_prefix("/apis/") {
            Some(group) if !group.contains('/') => {
                match discovery::api_group(&state.store().resources(), group) {
                    Some(doc) => json_with(request, Endpoint::Other, &doc),
                    None => page_not_found(),
                }
            }
            _ => page_not_found(),
        },
    }
}
