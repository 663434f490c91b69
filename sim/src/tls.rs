//! Per-cluster TLS: a fresh self-signed CA for every simulated cluster and a serving
//! certificate for `127.0.0.1` and `localhost` signed by it, as `kind`/kubeadm give every
//! cluster its own CA. Nothing is written to disk; the CA goes into the kubeconfig as
//! `certificate-authority-data`. Only the ring provider is used (see DEPENDENCIES.md).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A cluster's CA (PEM, for clients) and the rustls config of its HTTPS listener.
#[derive(Clone)]
pub struct ClusterTls {
    /// The CA certificate (PEM) clients trust.
    pub ca_pem: String,
    /// Serves the cluster's certificate for `127.0.0.1` and `localhost`.
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not generate the CA or the serving certificate.
    #[error("generating the certificates of cluster {cluster}: {source}")]
    Certificate {
        /// Name of the cluster the certificates are for.
        cluster: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// rustls rejected the certificate or key.
    #[error("building the TLS server config of cluster {cluster}: {source}")]
    Config {
        /// Name of the cluster the config is for.
        cluster: String,
        /// rustls's error.
        source: rustls::Error,
    },
}

impl ClusterTls {
    /// Makes a CA named after the cluster and a serving certificate for 127.0.0.1 and localhost.
    /// ALPN offers h2 and http/1.1, like the real server.
    pub fn generate(cluster: &str) -> Result<ClusterTls, TlsError> {
        let cert_err = |source| TlsError::Certificate {
            cluster: cluster.to_string(),
            source,
        };

        let ca_key = KeyPair::generate().map_err(cert_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, format!("{cluster}-ca"));
        ca_params.distinguished_name = ca_name;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_err)?;
        let ca_pem = ca_cert.pem();
        let ca_der = ca_cert.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(cert_err)?;
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .map_err(cert_err)?;
        let mut server_name = DistinguishedName::new();
        server_name.push(DnType::CommonName, "kube-apiserver");
        server_params.distinguished_name = server_name;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(cert_err)?;

        let chain = vec![server_cert.der().clone(), ca_der];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|source| TlsError::Config {
                cluster: cluster.to_string(),
                source,
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ClusterTls {
            ca_pem,
            server_config: Arc::new(config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_ca_and_a_serving_config_with_alpn() {
        let tls = ClusterTls::generate("sim-1").expect("certificates");
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            tls.server_config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
