//! P3 (metadata rows): heap bytes per cached pod of a metadata-only cache, counted as P3
//! counts them (live heap after a synced cache minus before, by the counting allocator; the
//! server is another process).
//!
//! Contenders: Panoptes' metadata informer (`FactoryOptions { cache: CacheMode::Metadata }`,
//! `PartialObjectMeta<Pod>`, managedFields cut by the default transform) against kube's
//! `metadata_watcher` (in kube 5: `watcher` over `Api<PartialObjectMeta<Pod>>`) +
//! `reflector` store, as its users write it (managedFields kept), and with `.modify()`
//! dropping managedFields the same way. Goal: ≤ 1.5 KB per pod.

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use panoptes_actors::{CacheMode, FactoryOptions, Informer, InformerFactory, ids::ClusterId};

use crate::Sizes;
use crate::contenders::{SYNC_PATIENCE, warm_server};
use crate::p3_heap_per_pod::per_pod;
use crate::report::Line;

/// The goal for a metadata-only cache: bytes per pod.
const GOAL_BYTES_PER_POD: f64 = 1536.0;

/// A synced Panoptes metadata informer of pods.
struct PanoptesMetadata {
    factory: InformerFactory,
    _informer: Informer<PartialObjectMeta<Pod>>,
}

impl PanoptesMetadata {
    async fn sync(client: kube::Client) -> anyhow::Result<Self> {
        let options = FactoryOptions {
            cache: CacheMode::Metadata,
            ..FactoryOptions::default()
        };
        let factory = InformerFactory::new(client, ClusterId::new("sim-1"), options);
        let informer = factory.informer::<PartialObjectMeta<Pod>>();
        factory.start();
        let synced = factory.wait_for_cache_sync(SYNC_PATIENCE).await;
        if !synced.values().all(|ok| *ok) {
            factory.shutdown();
            anyhow::bail!("Panoptes' metadata informer did not sync: {synced:?}");
        }
        Ok(Self {
            factory,
            _informer: informer,
        })
    }
}

impl Drop for PanoptesMetadata {
    fn drop(&mut self) {
        self.factory.shutdown();
    }
}

/// kube's metadata watcher feeding a `reflector` store, driven by a spawned task.
struct KubeMetadata {
    _reader: reflector::Store<PartialObjectMeta<Pod>>,
    task: tokio::task::JoinHandle<()>,
}

impl KubeMetadata {
    async fn sync(client: kube::Client, strip_managed_fields: bool) -> anyhow::Result<Self> {
        let (reader, writer) = reflector::store::<PartialObjectMeta<Pod>>();
        // kube 5's spelling of `metadata_watcher`: an `Api<PartialObjectMeta<K>>` sends the
        // metadata-only requests by itself.
        let api = kube::Api::<PartialObjectMeta<Pod>>::all(client);
        let events = watcher(api, watcher::Config::default());
        let task = if strip_managed_fields {
            let stream = events
                .modify(|meta| meta.metadata.managed_fields = None)
                .reflect(writer);
            tokio::spawn(async move { stream.for_each(|_| async {}).await })
        } else {
            let stream = events.reflect(writer);
            tokio::spawn(async move { stream.for_each(|_| async {}).await })
        };
        tokio::time::timeout(SYNC_PATIENCE, reader.wait_until_ready())
            .await
            .context("kube's metadata_watcher did not sync in time")?
            .context("kube's writer went away")?;
        Ok(Self {
            _reader: reader,
            task,
        })
    }
}

impl Drop for KubeMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pods = sizes.p3_pods;
    let (_server, client) = warm_server(pods, pin).await?;

    let ours = per_pod(pods, async || PanoptesMetadata::sync(client.clone()).await).await?;
    let kube_default = per_pod(pods, async || {
        KubeMetadata::sync(client.clone(), false).await
    })
    .await?;
    let kube_stripped = per_pod(pods, async || {
        KubeMetadata::sync(client.clone(), true).await
    })
    .await?;

    let describe =
        |(bytes, allocs): (f64, f64)| format!("{:.2} KB, {allocs:.0} allocs", bytes / 1024.0);
    lines.push(
        Line::new(
            "P3",
            format!("heap per cached pod, metadata only ({pods} pods): Panoptes metadata informer vs kube metadata_watcher store"),
        )
        .result(format!(
            "Panoptes {}; kube {}; kube stripped {}",
            describe(ours),
            describe(kube_default),
            describe(kube_stripped)
        ))
        .against(
            format!("{:.2} KB ({:.2}× kube)", ours.0 / 1024.0, ours.0 / kube_default.0),
            "≤ 1.5 KB",
            ours.0 <= GOAL_BYTES_PER_POD,
        ),
    );
    Ok(())
}
