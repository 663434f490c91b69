//! What a request addresses, parsed from its method, path and query the way the apiserver's
//! `RequestInfoFactory` does (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go):
//! `/api/v1/...` and `/apis/<group>/<version>/...`, namespaced or cluster scoped, collection
//! or item, a subresource, the legacy `/watch/` prefix, and the verb (get, list, watch,
//! create, update, patch, delete, deletecollection). Paths outside the API are
//! [`RequestInfo::NonResource`].

use http::Method;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestInfo {
    /// `/version`, `/healthz`, `/api`, `/apis/apps`, `/openapi/v2`, ... : served by path.
    NonResource {
        /// The request path, without the query.
        path: String,
    },
    /// `/api/v1` or `/apis/<g>/<v>` itself (discovery of one group version).
    GroupVersion {
        /// "" for `/api/v1`.
        group: String,
        /// The version in the path.
        version: String,
    },
    /// A request on a resource.
    Resource(ResourceRequest),
}

/// A request on a resource collection or item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// The authorization verb, from the method and whether the path names an object.
    pub verb: Verb,
    /// API group; "" for the core group (`/api/v1`).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// `namespaces/<ns>` of the path; None for cluster-wide requests.
    pub namespace: Option<String>,
    /// Plural, as in the path.
    pub resource: String,
    /// The object's name; None on collections.
    pub name: Option<String>,
    /// `status`, `scale`, or anything else (answered 404).
    pub subresource: Option<String>,
}

/// The authorization verb of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `?watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// A method the API does not map (OPTIONS, HEAD on a collection, ...).
    Other,
}

impl Verb {
    /// The RBAC spelling ("deletecollection").
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => "unknown",
        }
    }
}

/// Subresources of a namespace that do not start a nested resource path.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl RequestInfo {
    /// Parses a request the way the apiserver does. `query_watch` is `?watch=true|1`.
    pub fn parse(method: &Method, path: &str, query_watch: bool) -> RequestInfo {
        let non_resource = || RequestInfo::NonResource {
            path: path.to_string(),
        };
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return non_resource(),
        };
        if rest.is_empty() {
            return RequestInfo::GroupVersion {
                group: group.to_string(),
                version: version.to_string(),
            };
        }
        let mut rest: &[&str] = rest;
        let mut legacy_watch = false;
        if rest[0] == "watch" {
            legacy_watch = true;
            rest = &rest[1..];
            if rest.is_empty() {
                return non_resource();
            }
        }
        let mut namespace = None;
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = Some(rest[1].to_string());
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        let resource = rest[0].to_string();
        let name = rest.get(1).map(|s| s.to_string());
        let subresource = rest.get(2).map(|s| s.to_string());
        // `/namespaces/<ns>` is the namespace object itself, not a scope.
        if resource == "namespaces" {
            namespace = None;
        }
        let verb = match *method {
            _ if legacy_watch && (*method == Method::GET) => Verb::Watch,
            Method::GET if name.is_none() && query_watch => Verb::Watch,
            Method::GET if name.is_none() => Verb::List,
            Method::GET => Verb::Get,
            Method::POST => Verb::Create,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch,
            Method::DELETE if name.is_none() => Verb::DeleteCollection,
            Method::DELETE => Verb::Delete,
            _ => Verb::Other,
        };
        RequestInfo::Resource(ResourceRequest {
            verb,
            group: group.to_string(),
            version: version.to_string(),
            namespace,
            resource,
            name,
            subresource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(method: Method, path: &str, watch: bool) -> ResourceRequest {
        match RequestInfo::parse(&method, path, watch) {
            RequestInfo::Resource(r) => r,
            other => panic!("{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn namespaced_collection_item_and_subresource() {
        let list = resource(Method::GET, "/api/v1/namespaces/fx/pods", false);
        assert_eq!(
            (list.verb, list.namespace.as_deref(), list.resource.as_str()),
            (Verb::List, Some("fx"), "pods")
        );
        let get = resource(
            Method::GET,
            "/apis/apps/v1/namespaces/fx/deployments/web/scale",
            false,
        );
        assert_eq!(get.group, "apps");
        assert_eq!(
            (get.verb, get.name.as_deref(), get.subresource.as_deref()),
            (Verb::Get, Some("web"), Some("scale"))
        );
        let watch = resource(Method::GET, "/api/v1/pods", true);
        assert_eq!((watch.verb, watch.namespace), (Verb::Watch, None));
    }

    #[test]
    fn legacy_watch_prefix_and_namespace_objects() {
        let w = resource(Method::GET, "/api/v1/watch/namespaces/fx/configmaps", false);
        assert_eq!(
            (w.verb, w.namespace.as_deref(), w.resource.as_str()),
            (Verb::Watch, Some("fx"), "configmaps")
        );
        let ns = resource(Method::DELETE, "/api/v1/namespaces/fx", false);
        assert_eq!(
            (
                ns.verb,
                ns.namespace,
                ns.resource.as_str(),
                ns.name.as_deref()
            ),
            (Verb::Delete, None, "namespaces", Some("fx"))
        );
        let status = resource(Method::PUT, "/api/v1/namespaces/fx/status", false);
        assert_eq!(
            (status.name.as_deref(), status.subresource.as_deref()),
            (Some("fx"), Some("status"))
        );
    }

    #[test]
    fn verbs_by_method_and_non_resource_paths() {
        assert_eq!(
            resource(Method::DELETE, "/api/v1/namespaces/a/pods", false).verb,
            Verb::DeleteCollection
        );
        assert_eq!(
            resource(Method::PATCH, "/api/v1/namespaces/a/pods/p", false).verb,
            Verb::Patch
        );
        assert_eq!(
            RequestInfo::parse(&Method::GET, "/version", false),
            RequestInfo::NonResource {
                path: "/version".into()
            }
        );
        assert_eq!(
            RequestInfo::parse(&Method::GET, "/apis/apps", false),
            RequestInfo::NonResource {
                path: "/apis/apps".into()
            }
        );
        assert_eq!(
            RequestInfo::parse(&Method::GET, "/apis/apps/v1", false),
            RequestInfo::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }
}
