//! The three ways of getting the pods of a cluster into a program that the rows compare, each
//! set up the way its users would by default:
//!
//! - Panoptes: `InformerFactory` → `informer::<Pod>()` (drops managedFields by default), or,
//!   where sharing across parts of a program or many clusters is measured, the
//!   `panoptes_runtime::Runtime` built from a `clusters.toml` naming the server's contexts;
//! - kube-runtime: `watcher` + `reflector` store (`store_shared` + `subscribe` for fan-out);
//! - decode only: the same list pages (`limit=500`, `continue`) fetched and decoded into
//!   `Vec<Pod>` with serde_json, nothing cached: the floor any cache is measured against.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ObjectList;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use panoptes_actors::{CacheMode, FactoryOptions, Informer, InformerFactory, ids::ClusterId};
use panoptes_runtime::{PanoptesConfig, Runtime};

/// How long any sync may take before the row fails instead of hanging.
pub const SYNC_PATIENCE: Duration = Duration::from_secs(600);

/// A client for context `context` of `kubeconfig`, built as a user would.
pub async fn client(kubeconfig: &str, context: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).context("the sim's kubeconfig parses")?;
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("kube accepts the sim's kubeconfig")?;
    Ok(kube::Client::try_from(config)?)
}

/// A Panoptes `Runtime` whose `clusters.toml` has one `[[clusters]]` entry per
/// `(name, context)` of the server's kubeconfig — how a user of the runtime configures it.
pub struct PanoptesRuntime {
    pub runtime: Runtime,
    /// Holds the kubeconfig file the configuration points at.
    _dir: tempfile::TempDir,
}

impl PanoptesRuntime {
    /// `runtime_keys`: more lines of the `[runtime]` table (P7's fleet settings), or `""`.
    pub async fn start(
        kubeconfig: &str,
        entries: &[(String, String)],
        runtime_keys: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temporary directory for clusters.toml")?;
        let kubeconfig_path = dir.path().join("kubeconfig.yaml");
        std::fs::write(&kubeconfig_path, kubeconfig).context("writing the kubeconfig")?;
        let mut text = String::from("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
        text.push_str(runtime_keys);
        for (name, context) in entries {
            text.push_str(&format!(
                "[[clusters]]\nname = \"{name}\"\nkubeconfig = {:?}\ncontext = \"{context}\"\n",
                kubeconfig_path.display().to_string()
            ));
        }
        let file = dir.path().join("clusters.toml");
        let config = PanoptesConfig::parse(&text, &file, std::iter::empty())
            .context("the bench's clusters.toml is valid")?;
        // `start_with`: no log subscriber, as the kube-runtime contender has none.
        let runtime = Runtime::start_with(
            &config,
            panoptes_runtime::Metrics::new(),
            panoptes_runtime::Readiness::new(),
        )
        .await
        .context("the runtime connects the server's clusters")?;
        Ok(Self { runtime, _dir: dir })
    }
}

impl Drop for PanoptesRuntime {
    fn drop(&mut self) {
        self.runtime.shutdown();
    }
}

/// A started Panoptes pod informer and the time its cache took to sync.
pub struct PanoptesPods {
    pub factory: InformerFactory,
    pub informer: Informer<Pod>,
    pub synced_after: Duration,
}

impl PanoptesPods {
    /// `before_start` registers handlers (or anything else) before the informer starts.
    pub async fn sync(
        client: kube::Client,
        cluster: &str,
        before_start: impl FnOnce(&Informer<Pod>),
    ) -> anyhow::Result<Self> {
        Self::sync_cached(client, cluster, CacheMode::Typed, before_start).await
    }

    /// [`sync`](Self::sync) with the cache held as `cache` says.
    pub async fn sync_cached(
        client: kube::Client,
        cluster: &str,
        cache: CacheMode,
        before_start: impl FnOnce(&Informer<Pod>),
    ) -> anyhow::Result<Self> {
        let options = FactoryOptions {
            cache,
            ..FactoryOptions::default()
        };
        let factory = InformerFactory::new(client, ClusterId::new(cluster), options);
        let informer = factory.informer::<Pod>();
        before_start(&informer);
        let started = Instant::now();
        factory.start();
        let synced = factory.wait_for_cache_sync(SYNC_PATIENCE).await;
        let synced_after = started.elapsed();
        if !synced.values().all(|ok| *ok) {
            factory.shutdown();
            bail!("Panoptes did not sync within {SYNC_PATIENCE:?}: {synced:?}");
        }
        Ok(Self {
            factory,
            informer,
            synced_after,
        })
    }

    pub fn cached(&self) -> usize {
        self.informer.store().list().len()
    }
}

impl Drop for PanoptesPods {
    fn drop(&mut self) {
        self.factory.shutdown();
    }
}

/// A kube-runtime reflector store fed by a watcher, driven by a spawned task.
pub struct KubeRuntimePods {
    pub reader: reflector::Store<Pod>,
    pub writer_subscribers: Vec<reflector::ReflectHandle<Pod>>,
    task: tokio::task::JoinHandle<()>,
    pub synced_after: Duration,
}

impl KubeRuntimePods {
    /// `strip_managed_fields` drops `metadata.managedFields` before the store (what Panoptes
    /// does by default); `subscribers` > 0 uses the shared store with that many handles.
    pub async fn sync(
        client: kube::Client,
        strip_managed_fields: bool,
        subscribers: usize,
    ) -> anyhow::Result<Self> {
        let (reader, writer) = if subscribers > 0 {
            reflector::store_shared::<Pod>(1024)
        } else {
            reflector::store::<Pod>()
        };
        let writer_subscribers = (0..subscribers)
            .map(|_| {
                writer
                    .subscribe()
                    .context("a shared store gives subscribers")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let api = kube::Api::<Pod>::all(client);
        let started = Instant::now();
        let events = watcher(api, watcher::Config::default());
        let task = if strip_managed_fields {
            let stream = events
                .modify(|pod| pod.metadata.managed_fields = None)
                .reflect_shared(writer);
            tokio::spawn(async move { stream.for_each(|_| async {}).await })
        } else {
            let stream = events.reflect_shared(writer);
            tokio::spawn(async move { stream.for_each(|_| async {}).await })
        };
        tokio::time::timeout(SYNC_PATIENCE, reader.wait_until_ready())
            .await
            .context("kube-runtime did not sync in time")?
            .context("kube-runtime's writer went away")?;
        Ok(Self {
            reader,
            writer_subscribers,
            task,
            synced_after: started.elapsed(),
        })
    }
}

impl Drop for KubeRuntimePods {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One cluster of `pods` pods in a server process, a client for it, and one warm-up
/// fetch+decode (TLS session, server-side JSON caches, allocator arenas) that also checks the
/// server lists exactly `pods`.
pub async fn warm_server(
    pods: usize,
    pin: bool,
) -> anyhow::Result<(crate::server_process::ServerProcess, kube::Client)> {
    let server = crate::server_process::ServerProcess::spawn(1, pods, pin)?;
    let client = client(server.kubeconfig(), "sim-1").await?;
    let (decoded, _) = fetch_and_decode(&client).await?;
    anyhow::ensure!(
        decoded == pods,
        "the server lists {decoded} pods, not {pods}"
    );
    Ok((server, client))
}

/// Fetches every page of `/api/v1/pods` (limit 500) and decodes each into `Vec<Pod>`, keeping
/// only the count. Returns `(pods, time)`.
pub async fn fetch_and_decode(client: &kube::Client) -> anyhow::Result<(usize, Duration)> {
    let started = Instant::now();
    let mut pods = 0;
    let mut token: Option<String> = None;
    loop {
        let uri = match &token {
            Some(t) => format!("/api/v1/pods?limit=500&continue={t}"),
            None => "/api/v1/pods?limit=500".to_string(),
        };
        let request = http::Request::builder()
            .uri(uri)
            .header("accept", "application/json")
            .body(Vec::new())?;
        let response = client.send(request.map(Into::into)).await?;
        if !response.status().is_success() {
            bail!("list page answered {}", response.status());
        }
        let body = response.into_body().collect().await?.to_bytes();
        let page: ObjectList<Pod> = serde_json::from_slice(&body).context("decoding a page")?;
        pods += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    Ok((pods, started.elapsed()))
}
