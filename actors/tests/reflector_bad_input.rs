//! The reflector against a raw HTTP server sending bytes a well-behaved API server never
//! would (duplicate keys, objects of the wrong kind, invalid or oversized watch frames,
//! truncated chunked bodies, expired `continue` tokens): it never panics, caches what it can
//! decode, and names what it could not.

mod raw_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::managed_fields::ManagedFields;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::reflector::{
    Reflector, ReflectorBatch, ReflectorConfig, ReflectorDelta, ReflectorReport,
};
use parking_lot::Mutex;
use raw_server::{End, RawServer, Reply};

const WAIT: Duration = Duration::from_secs(20);

/// Records every batch and report it receives.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<Vec<ReflectorDelta<Pod>>>>>,
    reports: Arc<Mutex<Vec<ReflectorReport>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ReflectorBatch<Pod>> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ReflectorBatch<Pod>, _: &mut Context<Self>) {
        self.batches.lock().push(msg.deltas);
    }
}

impl Handler<ReflectorReport> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ReflectorReport, _: &mut Context<Self>) {
        self.reports.lock().push(msg);
    }
}

impl Recorder {
    /// The names in each `Replace` so far, sorted.
    fn replaces(&self) -> Vec<Vec<String>> {
        let batches = self.batches.lock();
        let replaces = batches.iter().flatten().filter_map(|delta| match delta {
            ReflectorDelta::Replace { objects, .. } => {
                let mut names: Vec<String> = objects
                    .iter()
                    .map(|o| o.metadata.name.clone().unwrap_or_default())
                    .collect();
                names.sort();
                Some(names)
            }
            _ => None,
        });
        replaces.collect()
    }

    fn last_report(&self) -> Option<ReflectorReport> {
        self.reports.lock().last().cloned()
    }
}

fn start(server: &RawServer, config: ReflectorConfig) -> (Recorder, Addr<Reflector<Pod>>) {
    let recorder = Recorder::default();
    let addr = recorder.clone().start();
    let reflector = Reflector::new(
        ClusterId::from("raw"),
        "v1/pods".to_owned(),
        kube::Api::<Pod>::all(server.client()),
        config,
        addr.clone().recipient(),
        Some(addr.recipient()),
    )
    .start();
    (recorder, reflector)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A pod's JSON with a managedFields entry, as a server writes it.
fn pod(name: &str, rv: u64) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"default","resourceVersion":"{rv}","managedFields":[{{"manager":"kubectl","operation":"Update","fieldsV1":{{"f:metadata":{{}}}}}}]}},"spec":{{"containers":[{{"name":"c","image":"nginx"}}]}}}}"#
    )
}

fn page(rv: u64, continue_token: Option<&str>, items: &[String]) -> String {
    let continue_token = continue_token
        .map(|t| format!(r#","continue":"{t}""#))
        .unwrap_or_default();
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"{continue_token}}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn dropping_managed_fields() -> ReflectorConfig {
    ReflectorConfig {
        managed_fields: ManagedFields::Drop,
        ..ReflectorConfig::default()
    }
}

fn is_watch(target: &str) -> bool {
    target.contains("watch=true")
}

/// Regression (issue 11, Why 1): `strip` panicked ("slice index starts at 32 but ends at 31")
/// on a pod whose metadata holds `managedFields` twice; the page's decode task died, the list
/// was retried and died again, and the cache never synced.
#[actix_rt::test]
async fn should_sync_a_list_holding_a_pod_with_managed_fields_twice() {
    let twice = r#"{"metadata":{"name":"twice","namespace":"default","resourceVersion":"6","managedFields":[],"managedFields":[]}}"#;
    let body = page(9, None, &[pod("good-1", 5), twice.to_owned(), pod("good-2", 7)]);
    let server = RawServer::start(move |target| {
        if is_watch(target) {
            Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(60)))
        } else {
            Reply::Json(200, body.clone())
        }
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    eventually("the list's Replace", || !recorder.replaces().is_empty()).await;
    assert_eq!(recorder.replaces()[0], ["good-1", "good-2", "twice"]);
    assert!(recorder.last_report().is_some_and(|r| r.synced));
}
