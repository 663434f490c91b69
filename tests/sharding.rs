//! Sharding in one process: three `Runtime`s with `[sharding]` over six simulated clusters
//! (the Leases on one of them), driven through the public API — disjoint owned sets covering
//! the fleet, "not owned here" on every path (client, informer reads, controller enqueue),
//! a clean stop handing a replica's clusters to the others at once, and replicas cut off
//! from the home cluster disengaging within the renew deadline. The multi-process tests
//! (`panoptes run` replicas, `kill -9`) live in their own files.

mod multicluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{Action, Reconcile, ReconcileError, ReconcileKey};
use panoptes_runtime::{ClientError, Metrics, MultiInformer, PanoptesConfig, Readiness, Runtime};
use tokio::time::Instant;

use multicluster_support::{Clusters, DEADLINE};

/// Lease 2 s, renew deadline 1.5 s, retry 300 ms.
const RENEW_DEADLINE: Duration = Duration::from_millis(1500);
const RETRY: Duration = Duration::from_millis(300);
const CLUSTERS: usize = 6;

fn sharded_config(clusters: &Clusters, identity: &str) -> PanoptesConfig {
    let mut text = String::from("[runtime]\nmetrics_addr = \"127.0.0.1:0\"\n");
    for i in 1..=CLUSTERS {
        text.push_str(&format!(
            "[[clusters]]\nname = \"c{i}\"\nkubeconfig = {:?}\ncontext = \"sim-{i}\"\n",
            clusters.kubeconfig.display().to_string()
        ));
    }
    text.push_str(&format!(
        "[sharding]\nenabled = true\ncluster = \"c1\"\nidentity = \"{identity}\"\n\
         lease_duration = \"2s\"\nrenew_deadline = \"1500ms\"\nretry_period = \"300ms\"\n"
    ));
    PanoptesConfig::parse(
        &text,
        &clusters.dir.path().join("clusters.toml"),
        std::iter::empty(),
    )
    .expect("test config is valid")
}

struct Replica {
    runtime: Runtime,
    pods: MultiInformer<Pod>,
}

async fn replica(clusters: &Clusters, identity: &str) -> Replica {
    let config = sharded_config(clusters, identity);
    let runtime = Runtime::start_with(&config, Metrics::new(), Readiness::new())
        .await
        .expect("runtime starts");
    let pods = runtime.informer::<Pod>();
    Replica { runtime, pods }
}

/// Who owns each cluster now, by replica index; panics if a cluster has two owners.
fn owners(replicas: &[&Replica]) -> BTreeMap<ClusterId, usize> {
    let mut owners = BTreeMap::new();
    for (i, r) in replicas.iter().enumerate() {
        for cluster in r.runtime.owned_clusters() {
            if let Some(other) = owners.insert(cluster.clone(), i) {
                panic!("{cluster} owned by replicas {other} and {i} at once");
            }
        }
    }
    owners
}

/// Polls (sampling `owners`, which panics on a double owner) until `check` holds.
async fn until(
    what: &str,
    limit: Duration,
    replicas: &[&Replica],
    check: impl Fn(&BTreeMap<ClusterId, usize>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if check(&owners(replicas)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}: {:?}",
            owners(replicas)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn covers_all(owners: &BTreeMap<ClusterId, usize>) -> bool {
    owners.len() == CLUSTERS
}

struct Recorder;
impl Actor for Recorder {
    type Context = Context<Self>;
}
impl Handler<Reconcile<Pod>> for Recorder {
    type Result = Result<Action, ReconcileError>;
    fn handle(&mut self, _: Reconcile<Pod>, _: &mut Context<Self>) -> Self::Result {
        Ok(Action::Done)
    }
}

#[actix_rt::test]
async fn should_split_the_fleet_enforce_ownership_and_hand_over_on_a_clean_stop() {
    let clusters = Clusters::start(CLUSTERS, 3);
    let a = replica(&clusters, "replica-a").await;
    let b = replica(&clusters, "replica-b").await;
    let c = replica(&clusters, "replica-c").await;
    let all = [&a, &b, &c];
    until("all six owned, each replica some", DEADLINE, &all, |o| {
        covers_all(o) && (0..3).all(|i| o.values().any(|r| *r == i))
    })
    .await;
    // Stable: sample for a few rounds, never two owners (owners() panics on one).
    let settled = owners(&all);
    let end = Instant::now() + RETRY * 5;
    while Instant::now() < end {
        assert_eq!(owners(&all), settled, "ownership moved with no peer change");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Enforcement on replica a, for a cluster someone else owns and one it owns.
    let foreign = settled
        .iter()
        .find(|(_, r)| **r != 0)
        .map(|(c, _)| c.clone())
        .unwrap();
    let mine = settled
        .iter()
        .find(|(_, r)| **r == 0)
        .map(|(c, _)| c.clone())
        .unwrap();
    assert!(a.runtime.client(&foreign).is_none());
    assert_eq!(
        a.runtime.try_client(&foreign).err(),
        Some(ClientError::NotOwned {
            cluster: foreign.clone()
        })
    );
    assert!(a.runtime.try_client(&mine).is_ok());
    assert!(
        a.pods.handle(&foreign).is_none(),
        "no informer member for a foreign cluster"
    );
    assert!(a.pods.list(&foreign).is_none());
    assert!(a.pods.get(&foreign, Some("default"), "anything").is_none());
    assert!(!a.pods.clusters().contains(&foreign));
    assert!(
        a.pods.wait_synced(&mine, DEADLINE).await,
        "owned cluster syncs"
    );
    let controller = a
        .runtime
        .controller::<Pod>("shard-test")
        .run(Recorder.start());
    assert_eq!(
        controller.try_enqueue(ReconcileKey::new(foreign.clone(), Some("default"), "x")),
        Err(ClientError::NotOwned {
            cluster: foreign.clone()
        })
    );
    assert_eq!(
        controller.try_enqueue(ReconcileKey::new(mine.clone(), Some("default"), "x")),
        Ok(())
    );
    // Readiness names the owned clusters only.
    let owned_a = a.runtime.readiness().shard_owned().expect("sharded");
    assert_eq!(owned_a, a.runtime.owned_clusters());

    // The Leases are where the contract says, labelled.
    let client = a
        .runtime
        .try_client(&ClusterId::from("c1"))
        .or_else(|_| b.runtime.try_client(&ClusterId::from("c1")))
        .or_else(|_| c.runtime.try_client(&ClusterId::from("c1")))
        .expect("someone owns c1");
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let shards = leases
        .list(&ListParams::default().labels("panoptes.io/shard-role=shard"))
        .await
        .unwrap();
    let holders: BTreeMap<String, String> = shards
        .items
        .iter()
        .map(|l| {
            let spec = l.spec.clone().unwrap_or_default();
            (
                l.metadata.name.clone().unwrap(),
                spec.holder_identity.unwrap_or_default(),
            )
        })
        .collect();
    for (cluster, r) in &settled {
        let identity = ["replica-a", "replica-b", "replica-c"][*r];
        assert_eq!(
            holders
                .get(&format!("panoptes-shard-{cluster}"))
                .map(String::as_str),
            Some(identity)
        );
    }
    let peers = leases
        .list(&ListParams::default().labels("panoptes.io/shard-role=peer"))
        .await
        .unwrap();
    let peer_names: BTreeSet<String> = peers
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert!(
        peer_names.contains("panoptes-peer-replica-b"),
        "{peer_names:?}"
    );

    // Clean stop of b: its clusters go to a and c within a couple of retry periods.
    let of_b: Vec<ClusterId> = settled
        .iter()
        .filter(|(_, r)| **r == 1)
        .map(|(c, _)| c.clone())
        .collect();
    assert!(!of_b.is_empty());
    b.runtime.release_shards().await;
    assert!(
        b.runtime.owned_clusters().is_empty(),
        "a released replica owns nothing"
    );
    b.runtime.shutdown();
    let rest = [&a, &c];
    let took = until(
        "a and c own all six",
        RETRY * 4 + Duration::from_millis(500),
        &rest,
        covers_all,
    )
    .await;
    eprintln!(
        "clean stop: {} cluster(s) of b moved in {took:?}",
        of_b.len()
    );
    // Only b's clusters moved.
    let after = owners(&rest);
    for (cluster, r) in &settled {
        match r {
            0 => assert_eq!(after.get(cluster), Some(&0), "{cluster} moved off a"),
            2 => assert_eq!(after.get(cluster), Some(&1), "{cluster} moved off c"),
            _ => {}
        }
    }
    controller
        .shutdown(panoptes_actors::ShutdownMode::Abandon)
        .await;
    a.runtime.release_shards().await;
    c.runtime.release_shards().await;
    a.runtime.shutdown();
    c.runtime.shutdown();
}

#[actix_rt::test]
async fn should_disengage_within_the_renew_deadline_when_cut_off_from_home() {
    let clusters = Clusters::start(CLUSTERS, 1);
    let a = replica(&clusters, "cut-a").await;
    let b = replica(&clusters, "cut-b").await;
    let both = [&a, &b];
    until("all six owned", DEADLINE, &both, |o| {
        covers_all(o) && o.values().any(|r| *r == 1) && o.values().any(|r| *r == 0)
    })
    .await;
    let home = clusters.sim.cluster(0);
    home.faults().fail_fraction(1.0, 500);
    let cut = Instant::now();
    let took = until(
        "nothing owned",
        RENEW_DEADLINE + Duration::from_millis(300),
        &both,
        |o| o.is_empty(),
    )
    .await;
    eprintln!("cut off: disengaged everything {took:?} after the fault");
    // The Leases last 2 s from the last renew others saw: nobody could have taken over yet,
    // and nobody re-engages while the fault lasts.
    assert!(cut.elapsed() < Duration::from_secs(2));
    tokio::time::sleep(RETRY * 3).await;
    assert!(owners(&both).is_empty(), "re-engaged while cut off");
    home.faults().clear();
    until("owned again once home answers", DEADLINE, &both, covers_all).await;
    a.runtime.release_shards().await;
    b.runtime.release_shards().await;
    a.runtime.shutdown();
    b.runtime.shutdown();
}
