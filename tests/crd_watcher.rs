//! The `crd_watcher` example's logic against two embedded clusters: the derived CRD is
//! applied where missing (and found the second time), backups created through each
//! cluster's API reach the one handler with the cluster they came from, and a delete on
//! one cluster is seen from that cluster only.

#[path = "../examples/crd_watcher/backups.rs"]
mod backups;

use std::time::{Duration, Instant};

use backups::{Backup, CrdOutcome};
use kube::api::{Api, DeleteParams};
use panoptes_runtime::{ClusterId, PanoptesConfig, Runtime};

const PATIENCE: Duration = Duration::from_secs(30);

fn two_embedded_clusters() -> PanoptesConfig {
    let text = r#"
        [[clusters]]
        name = "east"
        embedded = { pods = 1 }

        [[clusters]]
        name = "west"
        embedded = { pods = 1 }
    "#;
    PanoptesConfig::parse(text, "clusters.toml".as_ref(), std::iter::empty()).expect("config")
}

/// Polls until `seen` holds `n` lines, at most [`PATIENCE`].
async fn lines_when(
    seen: &parking_lot::Mutex<Vec<(ClusterId, String)>>,
    n: usize,
) -> Vec<(ClusterId, String)> {
    let deadline = Instant::now() + PATIENCE;
    while seen.lock().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lines = seen.lock().clone();
    lines.sort();
    lines
}

#[actix_rt::test]
async fn backups_on_every_embedded_cluster_reach_one_handler_naming_their_cluster() {
    let runtime = Runtime::start(&two_embedded_clusters())
        .await
        .expect("runtime");
    let (east, west) = (ClusterId::new("east"), ClusterId::new("west"));

    let applied = backups::ensure_crd_on_embedded(&runtime)
        .await
        .expect("CRD applied");
    assert_eq!(
        applied,
        [
            (east.clone(), CrdOutcome::Created),
            (west.clone(), CrdOutcome::Created)
        ]
    );
    let again = backups::ensure_crd_on_embedded(&runtime)
        .await
        .expect("CRD found");
    assert!(
        again
            .iter()
            .all(|(_, outcome)| *outcome == CrdOutcome::Present),
        "{again:?}"
    );

    let (informer, seen) = backups::watch_backups(&runtime, |_| {});
    for cluster in [&east, &west] {
        let client = runtime.client(cluster).expect("client");
        backups::create_backups(client, "default", 2)
            .await
            .expect("backups created");
    }
    let synced = informer.wait_all_synced(PATIENCE).await;
    assert!(synced.values().all(|s| *s), "{synced:?}");

    let lines = lines_when(&seen, 4).await;
    let expected: Vec<(ClusterId, String)> = [&east, &west]
        .into_iter()
        .flat_map(|cluster| {
            (0..2).map(move |i| {
                (
                    cluster.clone(),
                    format!("[{cluster}] ADDED default/nightly-{i} (orders-{i})"),
                )
            })
        })
        .collect();
    assert_eq!(lines, expected);
    assert_eq!(informer.list_all().len(), 4);

    let west_backups: Api<Backup> =
        Api::namespaced(runtime.client(&west).expect("client"), "default");
    west_backups
        .delete("nightly-1", &DeleteParams::default())
        .await
        .expect("delete");
    let lines = lines_when(&seen, 5).await;
    assert_eq!(
        lines
            .iter()
            .filter(|(_, line)| line.contains("DELETED"))
            .collect::<Vec<_>>(),
        [&(
            west.clone(),
            "[west] DELETED default/nightly-1 (orders-1)".to_string()
        )]
    );
    assert!(informer.get(&east, Some("default"), "nightly-1").is_some());
    runtime.shutdown();
}
