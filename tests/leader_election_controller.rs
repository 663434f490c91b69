//! Two `Runtime`s with `[leader_election]` against one sim cluster, each running the same
//! controller: only the leader's controller reconciles; when the leader dies without
//! releasing, the other's controller reconciles within the lease duration.

mod controller_support;
mod multicluster_support;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use controller_support::{Record, Recorder, create_configmap};
use k8s_openapi::api::core::v1::ConfigMap;
use multicluster_support::{Clusters, eventually};
use panoptes_actors::ids::ClusterId;
use panoptes_actors::{ReconcileKey, ShutdownMode};
use panoptes_runtime::Runtime;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(300);

fn key(name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new("home"), Some("default"), name)
}

struct Replica {
    runtime: Runtime,
    record: Arc<Record>,
    controller: panoptes_runtime::controller::ControllerHandle<ConfigMap>,
}

async fn replica(clusters: &Clusters, identity: &str) -> Replica {
    let runtime = Runtime::start(&clusters.leader_config(identity, "controllers"))
        .await
        .expect("runtime starts");
    let record = Arc::new(Record::default());
    let controller = runtime
        .controller::<ConfigMap>("annotator")
        .workers(2)
        .run(Recorder::new(record.clone()).start());
    Replica {
        runtime,
        record,
        controller,
    }
}

#[actix_rt::test]
async fn only_the_leaders_controller_reconciles_and_the_other_takes_over_when_it_dies() {
    let clusters = Clusters::start(1, 0);
    let a = replica(&clusters, "replica-a").await;
    let b = replica(&clusters, "replica-b").await;
    eventually("one replica leads", || {
        a.runtime.leadership().is_leader() || b.runtime.leadership().is_leader()
    })
    .await;
    let (leader, follower) = if a.runtime.leadership().is_leader() {
        (a, b)
    } else {
        (b, a)
    };
    let client = leader.runtime.client(&ClusterId::new("home")).unwrap();
    for name in ["one", "two"] {
        create_configmap(&client, name).await;
    }
    eventually("the leader reconciles both", || {
        leader.record.count(&key("one")) >= 1 && leader.record.count(&key("two")) >= 1
    })
    .await;
    // The follower's informers deliver the same changes (its queue is warm) but it starts
    // nothing while the leader renews: sample for a full lease duration.
    let end = Instant::now() + LEASE;
    while Instant::now() < end {
        assert!(
            !follower.runtime.leadership().is_leader(),
            "two leaders at once"
        );
        assert_eq!(follower.record.total(), 0, "the follower reconciled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The leader dies without releasing; a change made now is reconciled by the follower,
    // within the lease (plus its next, jittered attempt and the reconcile itself).
    leader
        .runtime
        .election()
        .expect("election running")
        .abandon();
    let killed = Instant::now();
    create_configmap(&client, "three").await;
    eventually("the follower reconciles the new object", || {
        follower.record.count(&key("three")) >= 1
    })
    .await;
    let took = killed.elapsed();
    let bound = LEASE + RETRY.mul_f64(2.2) + Duration::from_millis(700);
    assert!(
        took <= bound,
        "the follower reconciled {took:?} after the crash; bound {bound:?}"
    );
    assert!(
        took >= LEASE - RETRY,
        "reconciled {took:?} after the crash: before the lease ran out"
    );
    assert_eq!(
        leader.record.count(&key("three")),
        0,
        "the dead leader reconciled"
    );
    // What changed while it followed (its warm queue) is reconciled too.
    eventually("the follower catches up on the earlier objects", || {
        follower.record.count(&key("one")) >= 1 && follower.record.count(&key("two")) >= 1
    })
    .await;

    for replica in [leader, follower] {
        replica.controller.shutdown(ShutdownMode::Abandon).await;
        replica.runtime.release_leadership().await;
        replica.runtime.shutdown();
    }
}
