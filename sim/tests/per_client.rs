//! Telling clients apart by `User-Agent`, as a multi-replica test needs: watches counted per
//! agent (which replica watches this cluster now), and a partition that cuts one agent off
//! while the others are served — seen through real `kube::Client`s that set their agent.

mod common;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_sim::cli::apply_command;
use panoptes_sim::{Sim, SimOptions};
use serde_json::json;

const AGENT_A: &str = "panoptes/0.1.0 (shard replica-a)";
const AGENT_B: &str = "panoptes/0.1.0 (shard replica-b)";

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})).expect("configmap")
}

/// A client of `sim-1` that sends `agent` as its User-Agent, without kube's retries.
async fn configmaps_as(sim: &Sim, agent: &str) -> Api<ConfigMap> {
    let kubeconfig = Kubeconfig::from_yaml(&sim.cluster(0).kubeconfig_yaml()).expect("kubeconfig");
    let options = KubeConfigOptions {
        context: Some("sim-1".into()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("config");
    config.default_retry = false;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(agent).expect("a header value"),
    ));
    Api::namespaced(kube::Client::try_from(config).expect("client"), "default")
}

async fn current_rv(cms: &Api<ConfigMap>) -> String {
    cms.list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv")
}

#[tokio::test]
async fn open_and_started_watches_are_counted_per_user_agent() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let counters = sim.cluster(0).counters();
    let (a, b) = (
        configmaps_as(&sim, AGENT_A).await,
        configmaps_as(&sim, AGENT_B).await,
    );
    let rv = current_rv(&a).await;
    let watch_a = a
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch a");
    let watch_b1 = b
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch b");
    let watch_b2 = b
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch b");
    let open = counters.open_watches_by_agent("configmaps");
    assert_eq!(
        (open.len(), open.get(AGENT_A), open.get(AGENT_B)),
        (2, Some(&1), Some(&2)),
        "{open:?}"
    );
    assert_eq!(counters.open_watches("configmaps"), 3);
    assert!(counters.open_watches_by_agent("pods").is_empty());

    drop(watch_a);
    assert!(
        common::eventually(Duration::from_secs(5), || !counters
            .open_watches_by_agent("configmaps")
            .contains_key(AGENT_A))
        .await,
        "a client that leaves is no longer counted: {:?}",
        counters.open_watches_by_agent("configmaps")
    );
    assert_eq!(
        counters.open_watches_by_agent("configmaps").get(AGENT_B),
        Some(&2)
    );
    let started = counters.watches_by_agent("configmaps");
    assert_eq!((started[AGENT_A], started[AGENT_B]), (1, 2));
    drop((watch_b1, watch_b2));
    assert!(
        common::eventually(Duration::from_secs(5), || counters
            .open_watches_by_agent("configmaps")
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_partitioned_agent_gets_no_answers_and_silent_watches_while_others_are_served() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cluster = sim.cluster(0);
    let (a, b) = (
        configmaps_as(&sim, AGENT_A).await,
        configmaps_as(&sim, AGENT_B).await,
    );
    let rv = current_rv(&a).await;
    let mut watch_a = a
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch a")
        .boxed();
    let mut watch_b = b
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch b")
        .boxed();

    cluster
        .faults()
        .partition("replica-b", true)
        .expect("partition");
    assert!(cluster.faults().is_partitioned(AGENT_B));
    a.create(&PostParams::default(), &configmap("during"))
        .await
        .expect("the other agent is served");
    let seen = tokio::time::timeout(Duration::from_secs(5), watch_a.next())
        .await
        .expect("the other agent's watch streams");
    assert!(matches!(seen, Some(Ok(WatchEvent::Added(_)))), "{seen:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watch_b.next())
            .await
            .is_err(),
        "the cut-off agent's open watch goes silent"
    );
    assert_eq!(
        cluster
            .counters()
            .open_watches_by_agent("configmaps")
            .get(AGENT_B),
        Some(&1),
        "a silent watch is still open until the client leaves"
    );
    let requests_before = cluster.counters().requests();
    let pending = tokio::spawn({
        let b = b.clone();
        async move { b.get("during").await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "a cut-off agent's request gets no answer"
    );
    assert_eq!(
        cluster.counters().requests(),
        requests_before,
        "its requests never reach the server"
    );

    // A client that gives up on its silent watch (as a replica disengaging) is not counted.
    drop(watch_b);
    assert!(
        common::eventually(Duration::from_secs(5), || !cluster
            .counters()
            .open_watches_by_agent("configmaps")
            .contains_key(AGENT_B))
        .await,
        "{:?}",
        cluster.counters().open_watches_by_agent("configmaps")
    );

    cluster
        .faults()
        .partition("replica-b", false)
        .expect("heal");
    let answer = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the waiting request ends once the partition is lifted")
        .expect("task");
    assert!(
        matches!(&answer, Err(e) if !matches!(e, kube::Error::Api(_))),
        "its connection is closed without an answer: {answer:?}"
    );
    b.get("during")
        .await
        .expect("served again after the partition");
}

#[tokio::test]
async fn a_silent_watch_ends_when_the_partition_is_lifted() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let cluster = sim.cluster(0);
    let b = configmaps_as(&sim, AGENT_B).await;
    let rv = current_rv(&b).await;
    let mut watch_b = b
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    cluster.faults().partition("replica-b", true).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch_b.next())
            .await
            .is_err()
    );
    cluster.faults().partition("replica-b", false).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), watch_b.next())
        .await
        .expect("the silent watch ends");
    assert!(end.is_none(), "{end:?}");
}

#[test]
fn the_sim_cli_partitions_and_prints_open_watches_per_agent() {
    let sim = Sim::start(SimOptions::default()).expect("sim");
    let faults = sim.cluster(0).faults();
    assert_eq!(
        apply_command(&sim, "sim-1 partition replica-b on"),
        Ok("sim-1 partition replica-b on".into())
    );
    assert!(faults.is_partitioned(AGENT_B) && !faults.is_partitioned(AGENT_A));
    apply_command(&sim, "sim-1 partition replica-b off").expect("off");
    assert!(!faults.is_partitioned(AGENT_B));
    for bad in [
        "sim-1 partition replica-b",
        "sim-1 partition replica-b maybe",
        "sim-1 partition",
    ] {
        assert!(
            matches!(
                apply_command(&sim, bad),
                Err(panoptes_sim::cli::CommandError::BadArgument { .. })
            ),
            "{bad}"
        );
    }
    let counters = apply_command(&sim, "sim-1 counters pods").expect("counters");
    assert!(counters.ends_with("open_watches_by_agent={}"), "{counters}");
}
