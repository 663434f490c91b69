//! Kubeconfig files for the simulated clusters, shaped like the ones `kind` writes: one
//! cluster, user and context per cluster, all named after it (`sim-1`, ...), the CA inline
//! as `certificate-authority-data`, a bearer token as the user's credential.

use base64::Engine;

/// What one cluster contributes to a kubeconfig.
#[derive(Debug, Clone)]
pub struct KubeconfigEntry {
    /// Cluster, context and user name in the kubeconfig.
    pub name: String,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// The cluster's CA certificate (PEM), written as `certificate-authority-data`.
    pub ca_pem: String,
    /// The bearer token that authenticates as `system:admin`.
    pub token: String,
}

/// A kubeconfig holding every entry, with `current` as the current context.
pub fn render(entries: &[KubeconfigEntry], current: &str) -> String {
    let mut clusters = String::new();
    let mut contexts = String::new();
    let mut users = String::new();
    for entry in entries {
        let ca = base64::engine::general_purpose::STANDARD.encode(entry.ca_pem.as_bytes());
        clusters.push_str(&format!(
            "- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: {}\n",
            entry.server, entry.name
        ));
        contexts.push_str(&format!(
            "- context:\n    cluster: {0}\n    user: {0}\n  name: {0}\n",
            entry.name
        ));
        users.push_str(&format!(
            "- name: {}\n  user:\n    token: {}\n",
            entry.name, entry.token
        ));
    }
    format!(
        "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n{clusters}contexts:\n{contexts}current-context: {current}\nusers:\n{users}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_context_per_cluster() {
        let entries = ["sim-1", "sim-2"].map(|name| KubeconfigEntry {
            name: name.into(),
            server: "https://127.0.0.1:1234".into(),
            ca_pem: "PEM".into(),
            token: format!("token-{name}"),
        });
        let yaml = render(&entries, "sim-1");
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid yaml");
        assert_eq!(doc["current-context"], "sim-1");
        assert_eq!(doc["contexts"][1]["context"]["user"], "sim-2");
        assert_eq!(doc["users"][1]["user"]["token"], "token-sim-2");
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "UEVN"
        );
    }
}
