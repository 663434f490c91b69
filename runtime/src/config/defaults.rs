//! The defaults a `clusters.toml` key takes when left out, as `Default` impls, for code
//! that builds the configuration types itself ([`RuntimeBuilder`](crate::RuntimeBuilder)).
//! They match what [`PanoptesConfig::load`](super::PanoptesConfig::load) fills in.

use super::{EmbeddedCluster, OtlpProtocol, TelemetryConfig};

/// `[telemetry]` with nothing set: logs at `info` to stderr, no trace export.
impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            service_name: "panoptes".into(),
            sampling_ratio: 1.0,
            log: "info".into(),
        }
    }
}

/// `embedded = {}`: 100 pods in one namespace, no churn.
impl Default for EmbeddedCluster {
    fn default() -> Self {
        Self {
            pods: 100,
            namespaces: 1,
            churn_per_sec: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ClusterSource, PanoptesConfig};
    use super::*;

    #[test]
    fn should_match_what_loading_fills_in() {
        let text = "[[clusters]]\nname = \"dev\"\nembedded = {}\n";
        let config = PanoptesConfig::parse(text, "clusters.toml".as_ref(), std::iter::empty())
            .expect("a minimal file loads");
        assert_eq!(config.telemetry, TelemetryConfig::default());
        assert_eq!(
            config.clusters[0].source,
            ClusterSource::Embedded(EmbeddedCluster::default())
        );
    }
}
