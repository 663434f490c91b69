//! Leader election against a simulated cluster, through the public API: two candidates for
//! one Lease (as bare electors and as two `Runtime`s with `[leader_election]`), failover when
//! the leader dies without releasing, hand-over at once on a clean stop, a leader cut off
//! from the server closing its gate before its lease could run out, and the
//! `leader_election_master_status` metric on `/metrics`.

mod informer_support;
mod multicluster_support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use panoptes_actors::leader_elector::{ElectionTimings, LeaderElection, LeaderElector};
use panoptes_actors::lease_lock::LeaseLock;
use panoptes_runtime::{HealthServer, Metrics, Readiness, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use multicluster_support::Clusters;

/// The short timings the tests use: lease 2 s, renew deadline 1.5 s, retry 0.3 s.
const FAST: ElectionTimings = ElectionTimings {
    lease_duration: Duration::from_secs(2),
    renew_deadline: Duration::from_millis(1500),
    retry_period: Duration::from_millis(300),
};

/// Longest a follower may wait before its next attempt: `retry × 2.2` (jitter 1.2).
fn max_retry_wait(timings: &ElectionTimings) -> Duration {
    timings.retry_period.mul_f64(2.2)
}

/// Polls `check` every 10 ms until true; answers how long it took, panicking after `limit`
/// with `what`.
async fn within(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn elector(
    client: &kube::Client,
    lease: &str,
    identity: &str,
    timings: ElectionTimings,
) -> LeaderElection {
    let lock = LeaseLock::new(
        client.clone(),
        "default",
        lease,
        identity,
        timings.lease_duration,
    );
    LeaderElector::start(lock, timings)
}

/// Samples both gates for `period`: never both open.
async fn never_both_lead(a: &LeaderElection, b: &LeaderElection, period: Duration) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(
            !(a.leadership().is_leader() && b.leadership().is_leader()),
            "two leaders at once"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn lease(client: &kube::Client, name: &str) -> Lease {
    Api::<Lease>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .expect("the lease exists")
}

#[actix_rt::test]
async fn exactly_one_elector_leads_and_the_other_takes_over_within_the_lease_after_a_crash() {
    let clusters = Clusters::start(1, 0);
    let client = informer_support::client(clusters.sim.cluster(0)).await;
    let a = elector(&client, "crash", "a", FAST).await;
    let b = elector(&client, "crash", "b", FAST).await;
    within("someone leads", Duration::from_secs(10), || {
        a.leadership().is_leader() || b.leadership().is_leader()
    })
    .await;
    never_both_lead(&a, &b, FAST.lease_duration).await;
    let (leader, follower) = if a.leadership().is_leader() {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        leader.leadership().is_leader(),
        "the first leader keeps renewing"
    );
    let before = lease(&client, "crash").await.spec.unwrap();
    assert_eq!(before.holder_identity.as_deref(), Some(leader.identity()));

    leader.abandon();
    let took = within("the follower takes over", Duration::from_secs(10), || {
        follower.leadership().is_leader()
    })
    .await;
    // The follower counts the lease from when it saw the last renew (at most one retry period
    // before the crash), so it cannot take over sooner than this ...
    assert!(
        took >= FAST.lease_duration - FAST.retry_period,
        "took over after {took:?}, before the lease could have run out"
    );
    // ... and it does within the lease plus the wait until its next attempt.
    let bound = FAST.lease_duration + max_retry_wait(&FAST) + Duration::from_millis(500);
    assert!(
        took <= bound,
        "took over after {took:?}, more than {bound:?}"
    );
    assert!(
        !leader.leadership().is_leader(),
        "a stopped elector's gate reads closed"
    );
    let after = lease(&client, "crash").await.spec.unwrap();
    assert_eq!(after.holder_identity.as_deref(), Some(follower.identity()));
    assert_eq!(
        after.lease_transitions,
        before.lease_transitions.map(|t| t + 1)
    );
    follower.release().await.unwrap();
}

#[actix_rt::test]
async fn a_clean_release_hands_over_at_once() {
    // A long lease, so that waiting it out could not pass for a hand-over.
    let timings = ElectionTimings {
        lease_duration: Duration::from_secs(10),
        renew_deadline: Duration::from_secs(5),
        retry_period: Duration::from_millis(300),
    };
    let clusters = Clusters::start(1, 0);
    let client = informer_support::client(clusters.sim.cluster(0)).await;
    let a = elector(&client, "handover", "a", timings).await;
    within("a leads", Duration::from_secs(10), || {
        a.leadership().is_leader()
    })
    .await;
    let b = elector(&client, "handover", "b", timings).await;
    never_both_lead(&a, &b, Duration::from_secs(1)).await;
    assert!(!b.leadership().is_leader());

    let released = Instant::now();
    assert!(
        a.release().await.unwrap(),
        "a held the lease and wrote it free"
    );
    assert!(
        !a.leadership().is_leader(),
        "the gate closes before the lease is written free"
    );
    within("b takes over", Duration::from_secs(10), || {
        b.leadership().is_leader()
    })
    .await;
    let took = released.elapsed();
    let bound = max_retry_wait(&timings) + Duration::from_millis(700);
    assert!(
        took <= bound,
        "hand-over took {took:?}; the lease is {:?}",
        timings.lease_duration
    );
    let spec = lease(&client, "handover").await.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    b.release().await.unwrap();
    let spec = lease(&client, "handover").await.spec.unwrap();
    assert_eq!(spec.holder_identity, None, "released: no holder");
    assert_eq!(spec.lease_duration_seconds, Some(1));
}

#[actix_rt::test]
async fn a_leader_cut_off_from_the_server_closes_its_gate_before_its_lease_could_run_out() {
    let clusters = Clusters::start(1, 0);
    let cluster = clusters.sim.cluster(0);
    let client = informer_support::client(cluster).await;
    let a = elector(&client, "cutoff", "a", FAST).await;
    within("a leads", Duration::from_secs(10), || {
        a.leadership().is_leader()
    })
    .await;
    let mut gate = a.leadership();

    // Every request now fails with 500, as a server that lost etcd answers.
    cluster.faults().fail_fraction(1.0, 500);
    let cut = Instant::now();
    let closed = async { while gate.changed().await {} };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the gate closes");
    let took = cut.elapsed();
    // The last successful renew was at most one retry period before the cut; others may take
    // the lease from its duration after that. The gate must be closed by then.
    let others_may_take = FAST.lease_duration - FAST.retry_period;
    assert!(
        took < others_may_take,
        "gate closed {took:?} after the cut; others may take over after {others_may_take:?}"
    );
    assert!(
        took <= FAST.renew_deadline + Duration::from_millis(200),
        "closed {took:?} after the cut, later than the renew deadline"
    );

    // Reachable again, it leads again (nobody else wanted the lease).
    cluster.faults().clear();
    within("a leads again", Duration::from_secs(10), || {
        a.leadership().is_leader()
    })
    .await;
    a.release().await.unwrap();
}

/// `GET /metrics` from a health server, as a scraper does.
async fn scrape(server: &HealthServer) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

struct Replica {
    runtime: Runtime,
    health: HealthServer,
}

async fn replica(clusters: &Clusters, identity: &str) -> Replica {
    let config = clusters.leader_config(identity, "replicas");
    let (metrics, readiness) = (Metrics::new(), Readiness::new());
    let health = HealthServer::start(
        config.runtime.metrics_addr,
        metrics.clone(),
        readiness.clone(),
    )
    .await
    .expect("health server");
    let runtime = Runtime::start_with(&config, metrics, readiness)
        .await
        .expect("runtime starts");
    Replica { runtime, health }
}

const LEADING: &str = "leader_election_master_status{name=\"replicas\"} 1";
const FOLLOWING: &str = "leader_election_master_status{name=\"replicas\"} 0";

#[actix_rt::test]
async fn two_runtimes_elect_one_leader_show_it_in_metrics_and_hand_over() {
    let clusters = Clusters::start(1, 0);
    let a = replica(&clusters, "runtime-a").await;
    let b = replica(&clusters, "runtime-b").await;
    within("one runtime leads", Duration::from_secs(10), || {
        a.runtime.leadership().is_leader() || b.runtime.leadership().is_leader()
    })
    .await;
    let (leader, follower) = if a.runtime.leadership().is_leader() {
        (a, b)
    } else {
        (b, a)
    };
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        assert!(
            !follower.runtime.leadership().is_leader(),
            "two leaders at once"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    multicluster_support::eventually_async("the leader's /metrics says 1", || async {
        scrape(&leader.health).await.contains(LEADING)
    })
    .await;
    let text = scrape(&follower.health).await;
    assert!(text.contains(FOLLOWING), "the follower's /metrics: {text}");

    // Clean shutdown: the follower takes over at once, far sooner than the 2 s lease.
    let stopped = Instant::now();
    leader.runtime.shutdown();
    assert!(
        !leader.runtime.leadership().is_leader(),
        "shutdown closes the gate at once"
    );
    within("the follower takes over", Duration::from_secs(10), || {
        follower.runtime.leadership().is_leader()
    })
    .await;
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "hand-over took {took:?}; the lease is 2 s"
    );
    multicluster_support::eventually_async("the new leader's /metrics says 1", || async {
        scrape(&follower.health).await.contains(LEADING)
    })
    .await;

    // The old leader comes back as a new replica, then the leader dies without releasing:
    // the replica takes over within the lease (plus its next attempt).
    let c = replica(&clusters, "runtime-c").await;
    never_both(&follower.runtime, &c.runtime, Duration::from_secs(1)).await;
    assert!(follower.runtime.leadership().is_leader());
    follower
        .runtime
        .election()
        .expect("election running")
        .abandon();
    let killed = Instant::now();
    within(
        "the new replica takes over",
        Duration::from_secs(10),
        || c.runtime.leadership().is_leader(),
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took >= FAST.lease_duration - FAST.retry_period,
        "took over after {took:?}: too soon"
    );
    assert!(
        took <= FAST.lease_duration + max_retry_wait(&FAST) + Duration::from_millis(500),
        "took over after {took:?}"
    );
    let text = scrape(&c.health).await;
    assert!(
        text.contains(LEADING) || c.runtime.leadership().is_leader(),
        "{text}"
    );
    c.runtime.release_leadership().await;
    for replica in [leader, follower, c] {
        replica.runtime.shutdown();
        replica.health.stop().await.unwrap();
    }
}

async fn never_both(a: &Runtime, b: &Runtime, period: Duration) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(
            !(a.leadership().is_leader() && b.leadership().is_leader()),
            "two leaders at once"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
