//! Content negotiation on `Accept`, as the apiserver's `negotiation` package does it: the
//! first media range the server can produce wins. Resources can be answered as JSON, YAML
//! or a meta.k8s.io/v1 `Table`; `/api` and `/apis` also as aggregated discovery
//! (apidiscovery.k8s.io/v2beta1, the only version v1.28 serves). Protobuf is not produced:
//! a client that accepts nothing else gets 406 (headers/list-406*).

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Json,
    Yaml,
    /// meta.k8s.io/v1 Table (resource requests only).
    Table,
    /// apidiscovery.k8s.io/v2beta1 APIGroupDiscoveryList (`/api`, `/apis` only).
    AggregatedDiscovery,
}

/// What kind of endpoint is answering, which decides the representations on offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
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
        // PartialObjectMetadata(List) and other `as=` conversions are not offered.
        (_, Some(_)) => None,
        ("application/json" | "*/*" | "application/*", None) => Some(Representation::Json),
        ("application/yaml", None) if endpoint == Endpoint::Resource => Some(Representation::Yaml),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
