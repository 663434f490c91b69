//! Content negotiation on `Accept`, as the apiserver's `negotiation` package does it: the
//! first media range the server can produce wins. Resources can be answered as JSON, YAML,
//! a meta.k8s.io/v1 `Table` or meta.k8s.io/v1 `PartialObjectMetadata(List)` (metadata-only
//! clients); `/api` and `/apis` also as aggregated discovery (apidiscovery.k8s.io/v2beta1, the
//! only version v1.28 serves). Protobuf is not produced: a client that accepts nothing else
//! gets 406 (headers/list-406*).
//!
//! As the real `RequestScope.AllowsMediaTypeTransform` does, both `PartialObjectMetadata` and
//! `PartialObjectMetadataList` are accepted on every resource endpoint; whether the kind fits
//! the answer (an object or a list) is decided later, with a 406 naming the mismatch.
//!
//! Differences from a real server: the `meta.k8s.io/v1beta1` forms of `Table` and
//! `PartialObjectMetadata(List)` and their YAML or protobuf encodings are not offered, so a
//! client asking only for them gets 406 (kubectl and kube send v1 JSON first).

use crate::response;
use crate::store::{PatchType, Status};

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// `application/json` (also for `*/*` and no Accept header).
    Json,
    /// `application/yaml`.
    Yaml,
    /// meta.k8s.io/v1 Table (resource requests only).
    Table,
    /// apidiscovery.k8s.io/v2beta1 APIGroupDiscoveryList (`/api`, `/apis` only).
    AggregatedDiscovery,
    /// meta.k8s.io/v1 PartialObjectMetadata: an object's metadata only (gets, writes, watch
    /// events).
    PartialObjectMetadata,
    /// meta.k8s.io/v1 PartialObjectMetadataList: a list of objects' metadata only.
    PartialObjectMetadataList,
}

/// What kind of endpoint is answering, which decides the representations on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A resource (collection, item or subresource): JSON, YAML, Table and partial metadata.
    Resource,
    /// `/api` and `/apis`.
    DiscoveryRoot,
    /// Everything else that answers JSON.
    Other,
}

/// The Content-Type of aggregated discovery answers (discovery/aggregated-*.headers.txt).
pub const AGGREGATED_DISCOVERY_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Picks the representation for an `Accept` header; `None` means 406 Not Acceptable.
pub fn negotiate(accept: Option<&str>, endpoint: Endpoint) -> Option<Representation> {
    let accept = accept.map(str::trim).unwrap_or("");
    if accept.is_empty() {
        return Some(Representation::Json);
    }
    accept
        .split(',')
        .find_map(|range| media_range(range, endpoint))
}

fn media_range(range: &str, endpoint: Endpoint) -> Option<Representation> {
    let mut pieces = range.split(';').map(str::trim);
    let media_type = pieces.next()?.to_ascii_lowercase();
    let mut as_kind = None;
    let mut group = None;
    let mut version = None;
    for param in pieces {
        if let Some((key, value)) = param.split_once('=') {
            match key.trim() {
                "as" => as_kind = Some(value.trim()),
                "g" => group = Some(value.trim()),
                "v" => version = Some(value.trim()),
                _ => {}
            }
        }
    }
    match (media_type.as_str(), as_kind) {
        ("application/json", Some("Table")) => (endpoint == Endpoint::Resource
            && group == Some("meta.k8s.io")
            && version == Some("v1"))
        .then_some(Representation::Table),
        ("application/json", Some("APIGroupDiscoveryList")) => (endpoint
            == Endpoint::DiscoveryRoot
            && group == Some("apidiscovery.k8s.io")
            && version == Some("v2beta1"))
        .then_some(Representation::AggregatedDiscovery),
        ("application/json", Some("PartialObjectMetadata")) => (endpoint == Endpoint::Resource
            && group == Some("meta.k8s.io")
            && version == Some("v1"))
        .then_some(Representation::PartialObjectMetadata),
        ("application/json", Some("PartialObjectMetadataList")) => (endpoint == Endpoint::Resource
            && group == Some("meta.k8s.io")
            && version == Some("v1"))
        .then_some(Representation::PartialObjectMetadataList),
        // Other `as=` conversions are not offered.
        (_, Some(_)) => None,
        ("application/json" | "*/*" | "application/*", None) => Some(Representation::Json),
        ("application/yaml", None) if endpoint == Endpoint::Resource => Some(Representation::Yaml),
        _ => None,
    }
}

/// The patch type a PATCH's Content-Type names; 415 for anything else.
pub fn patch_type(content_type: Option<&str>) -> Result<PatchType, Status> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    const KUBECTL_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    const KUBECTL_DISCOVERY: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn kubectl_accepts() {
        assert_eq!(
            negotiate(Some(KUBECTL_TABLE), Endpoint::Resource),
            Some(Representation::Table)
        );
        assert_eq!(
            negotiate(Some(KUBECTL_DISCOVERY), Endpoint::DiscoveryRoot),
            Some(Representation::AggregatedDiscovery)
        );
        assert_eq!(
            negotiate(Some(KUBECTL_DISCOVERY), Endpoint::Other),
            Some(Representation::Json)
        );
        assert_eq!(
            negotiate(Some("application/json, */*"), Endpoint::Resource),
            Some(Representation::Json)
        );
        assert_eq!(
            negotiate(None, Endpoint::Resource),
            Some(Representation::Json)
        );
    }

    #[test]
    fn metadata_only_accepts_with_and_without_a_fallback() {
        let list =
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(list), Endpoint::Resource),
            Some(Representation::PartialObjectMetadataList)
        );
        let get = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(
            negotiate(Some(get), Endpoint::Resource),
            Some(Representation::PartialObjectMetadata)
        );
        // Not on discovery, and not in v1beta1: the fallback range answers.
        assert_eq!(
            negotiate(Some(list), Endpoint::Other),
            Some(Representation::Json)
        );
        let beta = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1";
        assert_eq!(negotiate(Some(beta), Endpoint::Resource), None);
    }

    #[test]
    fn unsupported_accepts_are_refused() {
        assert_eq!(negotiate(Some("text/html"), Endpoint::Resource), None);
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf"),
                Endpoint::Resource
            ),
            None
        );
        // v1.28 serves only v2beta1 aggregated discovery (fallbacks.md).
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(v2), Endpoint::DiscoveryRoot), None);
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                Endpoint::Resource
            ),
            Some(Representation::Json)
        );
        assert_eq!(
            negotiate(Some("application/yaml"), Endpoint::Resource),
            Some(Representation::Yaml)
        );
    }
}
