//! Errors reach the user (issue 14): a watched resource the cluster does not serve yet (a CRD
//! not applied: 404) is logged once — with cluster, resource and the server's message — and
//! handed to the `MultiInformer::on_watch_error` handler; once the CRD is applied, the
//! recovery is logged once too. Logs are captured from a real `Runtime` against an embedded
//! `sim` cluster through a global `tracing` subscriber (the pipelines log from their own
//! threads).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{WatchError, WatchErrorKind};
use panoptes_runtime::{PanoptesConfig, Runtime};

const PATIENCE: Duration = Duration::from_secs(30);

/// Everything the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines_with(&self, fragments: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| fragments.iter().all(|f| line.contains(f)))
            .map(String::from)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .expect("a valid CRD")
}

#[actix_rt::test]
async fn a_missing_crd_is_logged_once_with_the_servers_message_and_its_recovery_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("warn")
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let config = PanoptesConfig::parse(
        "[[clusters]]\nname = \"east\"\nembedded = { pods = 1 }\n\
         [[watch]]\nresource = \"example.com/v1/widgets\"\n",
        Path::new("clusters.toml"),
        [],
    )
    .expect("a valid configuration");
    let runtime = Runtime::start(&config).await.expect("the runtime starts");
    let widgets = runtime.watch(&config.watches[0]);
    let seen: Arc<Mutex<Vec<WatchError>>> = Arc::default();
    {
        let seen = seen.clone();
        widgets.on_watch_error(move |error| seen.lock().unwrap().push(error.clone()));
    }

    wait_until("the handler hears of the 404", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let error = seen.lock().unwrap()[0].clone();
    assert_eq!(error.cluster, ClusterId::new("east"));
    assert_eq!(error.resource, "example.com/v1/widgets");
    assert_eq!(error.kind, WatchErrorKind::NotFound);
    assert_eq!(error.code, Some(404));
    assert!(
        error.message.contains("404 page not found"),
        "the server's own message: {error:?}"
    );

    // Let it retry a few times (backoff 0.8 s, 1.6 s, ...): still one line, one call.
    let retries_before = widgets.status()[0].lists;
    wait_until("the reflector retried at least twice", || {
        widgets.status()[0].lists >= retries_before + 2
    })
    .await;
    let failing = captured.lines_with(&["WARN", "example.com/v1/widgets", "east", "404"]);
    assert_eq!(
        failing.len(),
        1,
        "one line per state change:\n{}",
        captured.text()
    );
    assert!(
        failing[0].contains("not found (404)") && failing[0].contains("404 page not found"),
        "{}",
        failing[0]
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "one call per state change");

    let client = runtime
        .client(&ClusterId::new("east"))
        .expect("the embedded cluster's client");
    Api::<CustomResourceDefinition>::all(client)
        .create(&PostParams::default(), &widget_crd())
        .await
        .expect("the CRD is applied");
    wait_until("the widgets informer syncs", || widgets.all_synced()).await;
    wait_until("the recovery is logged", || {
        !captured
            .lines_with(&["recovered", "example.com/v1/widgets"])
            .is_empty()
    })
    .await;
    let recovered = captured.lines_with(&["recovered", "example.com/v1/widgets", "east"]);
    assert_eq!(recovered.len(), 1, "{}", captured.text());
    assert_eq!(seen.lock().unwrap().len(), 1, "a recovery is not an error");
    runtime.shutdown();
}
