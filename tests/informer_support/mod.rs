//! Shared by the `informer_*` integration tests: a sim cluster, a `kube::Client` for it, the
//! server's truth read straight from the store, and a handler actor that checks every key's
//! event sequence.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use panoptes_actors::{Event, FactoryOptions, InformerFactory, ids::ClusterId};
use panoptes_sim::store::{DeleteOptions, ListOptions};
use panoptes_sim::{Sim, SimCluster, SimOptions};

pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn sim() -> Sim {
    Sim::start(SimOptions::default()).expect("the sim starts")
}

/// A client for `cluster`, built from its kubeconfig as a user would.
pub async fn client(cluster: &SimCluster) -> kube::Client {
    let kubeconfig =
        Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).expect("the sim's kubeconfig parses");
    let options = KubeConfigOptions {
        context: Some(cluster.name().to_string()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kube accepts the sim's kubeconfig");
    kube::Client::try_from(config).expect("client")
}

pub async fn factory(cluster: &SimCluster, options: FactoryOptions) -> InformerFactory {
    InformerFactory::new(
        client(cluster).await,
        ClusterId::new(cluster.name()),
        options,
    )
}

/// The server's pods in `namespace`: name → resourceVersion.
pub fn server_pods(cluster: &SimCluster, namespace: &str) -> BTreeMap<String, String> {
    let store = cluster.store();
    let pods = store.builtin("", "pods");
    let page = store
        .list(&pods, Some(namespace), &ListOptions::default())
        .expect("the store lists pods");
    page.items
        .iter()
        .map(|o| (o.name().to_string(), o.resource_version.to_string()))
        .collect()
}

/// Deletes a pod in the store at once (no grace period).
pub fn delete_pod(cluster: &SimCluster, namespace: &str, name: &str) {
    let store = cluster.store();
    let pods = store.builtin("", "pods");
    let options = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    store
        .delete(&pods, Some(namespace), name, &options)
        .expect("the store deletes the pod");
}

/// The cache's pods: name → resourceVersion.
pub fn cached_pods(objects: Vec<Arc<Pod>>) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap(),
                p.metadata.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Polls `done` until it holds; panics naming `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One event as seen by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Added {
        rv: String,
        initial: bool,
    },
    Updated {
        old_rv: String,
        rv: String,
        resync: bool,
    },
    Deleted {
        rv: String,
        final_state_unknown: bool,
    },
}

fn rv(p: &Pod) -> String {
    p.metadata.resource_version.clone().unwrap_or_default()
}

impl Seen {
    pub fn of(event: &Event<Pod>) -> (String, Seen) {
        let name = event.object().metadata.name.clone().unwrap();
        let seen = match event {
            Event::Added { obj, initial, .. } => Seen::Added {
                rv: rv(obj),
                initial: *initial,
            },
            Event::Updated { old, new, .. } => Seen::Updated {
                old_rv: rv(old),
                rv: rv(new),
                resync: Arc::ptr_eq(old, new),
            },
            Event::Deleted {
                obj,
                final_state_unknown,
                ..
            } => Seen::Deleted {
                rv: rv(obj),
                final_state_unknown: *final_state_unknown,
            },
        };
        (name, seen)
    }
}

/// Every key's events, in the order a handler got them.
pub type History = Arc<Mutex<HashMap<String, Vec<Seen>>>>;

/// Checks that `steps` is a valid life of one object: added before updated or deleted, never
/// added twice in a row, each update starting from the last state told. Returns the final
/// resourceVersion (None when deleted).
pub fn replay(name: &str, steps: &[Seen]) -> Option<String> {
    let mut state: Option<String> = None;
    for (i, step) in steps.iter().enumerate() {
        state = match (state, step) {
            (None, Seen::Added { rv, .. }) => Some(rv.clone()),
            (Some(current), Seen::Updated { old_rv, rv, .. }) => {
                assert_eq!(
                    &current, old_rv,
                    "{name}: step {i} updates from {old_rv} but the handler last saw {current}: {steps:?}"
                );
                Some(rv.clone())
            }
            (Some(_), Seen::Deleted { .. }) => None,
            (state, step) => {
                panic!("{name}: step {i} {step:?} is invalid after state {state:?}: {steps:?}")
            }
        };
    }
    state
}

/// A handler actor that records every key's history, optionally slowly.
pub struct Recording {
    pub history: History,
    pub delay: Option<Duration>,
}

impl Recording {
    pub fn new() -> (Self, History) {
        let history = History::default();
        (
            Self {
                history: history.clone(),
                delay: None,
            },
            history,
        )
    }
}

impl Actor for Recording {
    type Context = Context<Self>;
}

impl Handler<Event<Pod>> for Recording {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, event: Event<Pod>, _ctx: &mut Self::Context) -> Self::Result {
        let (name, seen) = Seen::of(&event);
        self.history
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .push(seen);
        let delay = self.delay;
        Box::pin(
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
            }
            .into_actor(self),
        )
    }
}

/// Final states by replaying every history (panics on an invalid sequence).
pub fn final_states(history: &History) -> BTreeMap<String, String> {
    history
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(name, steps)| replay(name, steps).map(|rv| (name.clone(), rv)))
        .collect()
}
