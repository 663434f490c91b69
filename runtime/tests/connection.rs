//! Cluster connections: clients from kubeconfig files and YAML, identities that recognise the
//! same server and credential without ever showing the credential.

use base64::Engine as _;
use panoptes_actors::ids::ClusterId;
use panoptes_runtime::config::{ClusterConfig, ClusterSource, EmbeddedCluster};
use panoptes_runtime::connection::{
    ClusterIdentity, ConnectionError, connect, connect_with_kubeconfig_yaml,
};
use panoptes_runtime::rate_limit::RateLimitLayer;

const SECRET: &str = "s3cr3t-token-never-printed";

/// A kubeconfig for `server` whose user `user` holds bearer `token`.
fn kubeconfig(server: &str, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: ctx\n  context: {{cluster: c, user: {user}}}\ncurrent-context: ctx\nusers:\n- name: {user}\n  user:\n    token: {token}\n"
    )
}

fn cluster(name: &str, source: ClusterSource) -> ClusterConfig {
    ClusterConfig {
        name: ClusterId::from(name),
        source,
        qps: Some(5.0),
        burst: Some(10),
    }
}

fn embedded(name: &str) -> ClusterConfig {
    let spec = EmbeddedCluster {
        pods: 1,
        namespaces: 1,
        churn_per_sec: 0.0,
    };
    cluster(name, ClusterSource::Embedded(spec))
}

async fn identity(server: &str, user: &str, token: &str) -> ClusterIdentity {
    let yaml = kubeconfig(server, user, token);
    let connection = connect_with_kubeconfig_yaml(&embedded("e"), &yaml, None)
        .await
        .expect("connect");
    connection.identity
}

#[tokio::test]
async fn same_server_and_token_is_one_identity_whatever_the_user_is_called() {
    let a = identity("https://127.0.0.1:6443", "alice", SECRET).await;
    let b = identity("https://127.0.0.1:6443/", "admin", SECRET).await;
    assert_eq!(a, b);
    assert_eq!(a.server(), "https://127.0.0.1:6443");
    assert_eq!(a.user(), "alice");
}

#[tokio::test]
async fn a_different_token_or_server_is_a_different_identity() {
    let a = identity("https://127.0.0.1:6443", "alice", SECRET).await;
    assert_ne!(
        a,
        identity("https://127.0.0.1:6443", "alice", "another-token").await
    );
    assert_ne!(a, identity("https://127.0.0.1:7443", "alice", SECRET).await);
}

#[tokio::test]
async fn the_same_token_trusting_the_server_differently_is_a_different_identity() {
    // An entry that verifies the server must not be served by a connection that does not.
    let insecure = identity("https://127.0.0.1:6443", "alice", SECRET).await;
    let ca = panoptes_sim::tls::ClusterTls::generate("trusted")
        .expect("a CA")
        .ca_pem;
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
    let yaml = kubeconfig("https://127.0.0.1:6443", "alice", SECRET).replace(
        "insecure-skip-tls-verify: true",
        &format!("certificate-authority-data: {ca_data}"),
    );
    let verified = connect_with_kubeconfig_yaml(&embedded("e"), &yaml, None)
        .await
        .expect("connect")
        .identity;
    assert_ne!(insecure, verified);
}

#[tokio::test]
async fn identity_never_shows_the_token() {
    let a = identity("https://127.0.0.1:6443", "alice", SECRET).await;
    let shown = format!("{a} {a:?} {a:#?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        shown.contains("alice") && shown.contains("https://127.0.0.1:6443"),
        "{shown}"
    );
    assert!(shown.contains(&a.short_fingerprint()));
}

#[tokio::test]
async fn kubeconfig_entry_connects_and_carries_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig("https://127.0.0.1:6443", "alice", SECRET)).unwrap();
    let source = ClusterSource::Kubeconfig {
        path,
        context: Some("ctx".into()),
    };
    let connection = connect(&cluster("kind", source)).await.expect("connect");
    assert_eq!(connection.name.as_str(), "kind");
    assert_eq!(
        connection.identity,
        identity("https://127.0.0.1:6443", "x", SECRET).await
    );
    assert_eq!(
        connection.rate_limit,
        Some(RateLimitLayer {
            qps: 5.0,
            burst: 10
        })
    );
    assert!(!format!("{connection:?}").contains(SECRET));
}

#[tokio::test]
async fn errors_name_the_cluster_entry() {
    let err = connect(&embedded("edge")).await.unwrap_err();
    assert!(matches!(err, ConnectionError::EmbeddedNotStarted { .. }));
    assert!(err.to_string().contains("\"edge\""), "{err}");

    let err = connect_with_kubeconfig_yaml(&embedded("edge"), "not: [yaml", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"edge\""), "{err}");

    let yaml = kubeconfig("https://127.0.0.1:6443", "alice", SECRET);
    let err = connect_with_kubeconfig_yaml(&embedded("edge"), &yaml, Some("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"edge\""), "{err}");
    assert!(!err.to_string().contains(SECRET), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone");
    let source = ClusterSource::Kubeconfig {
        path: path.clone(),
        context: None,
    };
    let err = connect(&cluster("kind", source)).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("\"kind\"") && message.contains(&path.display().to_string()),
        "{message}"
    );

    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        let err = connect(&cluster("pod", ClusterSource::InCluster))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("\"pod\""), "{err}");
    }
}

#[tokio::test]
async fn qps_and_burst_pace_the_clients_requests() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let app = axum::Router::new().route(
        "/version",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "{}" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut entry = embedded("paced");
    (entry.qps, entry.burst) = (Some(20.0), Some(1));
    let yaml = kubeconfig(&server, "alice", SECRET);
    let connection = connect_with_kubeconfig_yaml(&entry, &yaml, None)
        .await
        .expect("connect");
    let start = std::time::Instant::now();
    for _ in 0..4 {
        let request = http::Request::get("/version").body(Vec::new()).unwrap();
        connection
            .client
            .request_text(request)
            .await
            .expect("request");
    }
    let elapsed = start.elapsed();
    assert_eq!(served.load(Ordering::SeqCst), 4);
    // One free request, then three more at 20/s: at least 150ms.
    assert!(
        elapsed >= std::time::Duration::from_millis(145),
        "{elapsed:?}"
    );
}
