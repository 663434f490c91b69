//! The reflector actor against a scripted in-process API server (a `tower` service behind a
//! real `kube::Client`, no socket): requests made, deltas delivered, lifecycle.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use k8s_openapi::api::core::v1::ConfigMap;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::reflector::{
    Reflector, ReflectorBatch, ReflectorConfig, ReflectorDelta, ReflectorReport, ReflectorState,
    StopReflector,
};
use parking_lot::Mutex;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One scripted answer to a request.
enum Answer {
    /// A JSON body with this status (and `Retry-After` if given).
    Json {
        code: u16,
        body: String,
        retry_after: Option<u64>,
    },
    /// A watch: 200 with a body the test feeds line by line through the server's `watches`.
    Watch,
}

/// The scripted server: answers requests in order; records their URIs.
#[derive(Clone, Default)]
struct FakeServer {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// The open watch bodies, newest last.
    watches: Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>,
}

impl FakeServer {
    fn answer(&self, answer: Answer) -> &Self {
        self.answers.lock().push_back(answer);
        self
    }

    fn json(&self, code: u16, body: serde_json::Value) -> &Self {
        self.answer(Answer::Json {
            code,
            body: body.to_string(),
            retry_after: None,
        })
    }

    fn client(&self) -> kube::Client {
        let server = self.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.respond(req.uri().to_string())) }
        });
        kube::Client::new(service, "default")
    }

    fn respond(&self, uri: String) -> http::Response<Body> {
        self.requests.lock().push(uri.clone());
        let answer = self.answers.lock().pop_front();
        match answer {
            Some(Answer::Json {
                code,
                body,
                retry_after,
            }) => {
                let mut response = http::Response::builder().status(code);
                if let Some(seconds) = retry_after {
                    response = response.header("Retry-After", seconds.to_string());
                }
                response
                    .body(Full::new(Bytes::from(body)).boxed_unsync())
                    .unwrap()
            }
            Some(Answer::Watch) => {
                let (tx, rx) = mpsc::unbounded::<Bytes>();
                self.watches.lock().push(tx);
                let frames = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
                http::Response::new(StreamBody::new(frames).boxed_unsync())
            }
            None => panic!("unscripted request {uri}"),
        }
    }

    /// Sends raw lines on the newest watch, as one chunk.
    fn push(&self, lines: &[serde_json::Value]) {
        let mut chunk = String::new();
        for line in lines {
            chunk.push_str(&line.to_string());
            chunk.push('\n');
        }
        let watches = self.watches.lock();
        watches
            .last()
            .expect("no open watch")
            .unbounded_send(Bytes::from(chunk))
            .unwrap();
    }

    /// Sends raw bytes on the newest watch, as one chunk.
    fn push_raw(&self, bytes: &str) {
        let watches = self.watches.lock();
        let watch = watches.last().expect("no open watch");
        watch.unbounded_send(Bytes::from(bytes.to_owned())).unwrap();
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().clone()
    }
}

fn cm(name: &str, rv: u64) -> serde_json::Value {
    serde_json::json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": rv.to_string()}})
}

fn page(rv: u64, continue_token: Option<&str>, items: Vec<serde_json::Value>) -> serde_json::Value {
    let mut metadata = serde_json::json!({"resourceVersion": rv.to_string()});
    if let Some(token) = continue_token {
        metadata["continue"] = token.into();
    }
    serde_json::json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": metadata, "items": items})
}

fn event(kind: &str, object: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"type": kind, "object": object})
}

/// Records every batch and report it receives.
#[derive(Default, Clone)]
struct Recorder {
    batches: Arc<Mutex<Vec<Vec<ReflectorDelta<ConfigMap>>>>>,
    reports: Arc<Mutex<Vec<ReflectorReport>>>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ReflectorBatch<ConfigMap>> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ReflectorBatch<ConfigMap>, _: &mut Context<Self>) {
        self.batches.lock().push(msg.deltas);
    }
}

impl Handler<ReflectorReport> for Recorder {
    type Result = ();
    fn handle(&mut self, msg: ReflectorReport, _: &mut Context<Self>) {
        self.reports.lock().push(msg);
    }
}

/// A delta as `(kind, name, resourceVersion)` — or for a Replace, its names and version.
fn describe(delta: &ReflectorDelta<ConfigMap>) -> String {
    let id = |o: &ConfigMap| {
        format!(
            "{}@{}",
            o.metadata.name.as_deref().unwrap_or(""),
            o.metadata.resource_version.as_deref().unwrap_or("")
        )
    };
    match delta {
        ReflectorDelta::Added(o) => format!("Added {}", id(o)),
        ReflectorDelta::Modified(o) => format!("Modified {}", id(o)),
        ReflectorDelta::Deleted(o) => format!("Deleted {}", id(o)),
        ReflectorDelta::Replace {
            objects,
            resource_version,
        } => {
            let names: Vec<_> = objects
                .iter()
                .map(|o| o.metadata.name.clone().unwrap_or_default())
                .collect();
            format!("Replace [{}] @{resource_version}", names.join(","))
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn start(
    server: &FakeServer,
    config: ReflectorConfig,
) -> (Addr<Reflector<ConfigMap>>, Recorder, Addr<Recorder>) {
    let recorder = Recorder::default();
    let recorder_addr = recorder.clone().start();
    let api = kube::Api::<ConfigMap>::namespaced(server.client(), "default");
    let reflector = Reflector::new(
        ClusterId::from("fake"),
        "v1/configmaps".to_owned(),
        api,
        config,
        recorder_addr.clone().recipient(),
        Some(recorder_addr.clone().recipient()),
    )
    .start();
    (reflector, recorder, recorder_addr)
}

fn batches(recorder: &Recorder) -> Vec<Vec<String>> {
    recorder
        .batches
        .lock()
        .iter()
        .map(|b| b.iter().map(describe).collect())
        .collect()
}

#[actix_rt::test]
async fn should_deliver_all_pages_as_one_replace_then_watch_events_in_order() {
    let server = FakeServer::default();
    server
        .json(200, page(10, Some("c1"), vec![cm("a", 3), cm("b", 4)]))
        .json(200, page(10, None, vec![cm("c", 5)]))
        .answer(Answer::Watch);
    let config = ReflectorConfig {
        page_size: 2,
        ..ReflectorConfig::default()
    };
    let (_reflector, recorder, _keep) = start(&server, config);

    eventually("the watch", || !server.watches.lock().is_empty()).await;
    server.push(&[event("ADDED", cm("d", 11))]);
    eventually("two batches", || recorder.batches.lock().len() == 2).await;
    server.push(&[
        event("MODIFIED", cm("a", 12)),
        event("DELETED", cm("b", 13)),
    ]);
    eventually("three batches", || recorder.batches.lock().len() == 3).await;

    assert_eq!(
        batches(&recorder),
        vec![
            vec!["Replace [a,b,c] @10".to_owned()],
            vec!["Added d@11".to_owned()],
            vec!["Modified a@12".to_owned(), "Deleted b@13".to_owned()],
        ]
    );
    let requests = server.requests();
    assert_eq!(
        requests[0],
        "/api/v1/namespaces/default/configmaps?&limit=2"
    );
    assert!(requests[1].contains("limit=2&continue=c1"), "{requests:?}");
    let watch = &requests[2];
    assert!(
        watch.contains("watch=true") && watch.contains("allowWatchBookmarks=true"),
        "{watch}"
    );
    assert!(watch.ends_with("resourceVersion=10"), "{watch}");
    let timeout: u64 = watch
        .split("timeoutSeconds=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((300..600).contains(&timeout), "timeoutSeconds={timeout}");
    let report = recorder.reports.lock().last().cloned().unwrap();
    assert!(report.synced);
    assert_eq!(
        (report.state, report.lists, report.watches),
        (ReflectorState::Watching, 1, 1)
    );
}

#[actix_rt::test]
async fn should_resume_after_a_bookmark_and_relist_after_gone() {
    let server = FakeServer::default();
    server
        .json(200, page(10, None, vec![cm("a", 3)]))
        .answer(Answer::Watch)
        .answer(Answer::Watch);
    let (_reflector, recorder, _keep) = start(&server, ReflectorConfig::default());
    eventually("the watch", || server.watches.lock().len() == 1).await;
    let bookmark = serde_json::json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "20"}}});
    server.push(&[bookmark]);
    // Let the bookmark be read before the server ends the watch.
    eventually("the bookmark", || {
        recorder
            .reports
            .lock()
            .last()
            .and_then(|r| r.last_resource_version.clone())
            .is_some()
    })
    .await;
    server.watches.lock().pop();
    eventually("the resumed watch", || server.watches.lock().len() == 1).await;
    assert!(
        server.requests()[2].ends_with("resourceVersion=20"),
        "{:?}",
        server.requests()
    );

    server
        .json(200, page(30, None, vec![cm("z", 29)]))
        .answer(Answer::Watch);
    let gone = serde_json::json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": 410, "reason": "Expired", "message": "too old resource version: 20 (25)"}});
    server.push(&[gone]);
    eventually("the relist", || recorder.batches.lock().len() == 2).await;
    assert_eq!(batches(&recorder)[1], vec!["Replace [z] @30".to_owned()]);
    assert_eq!(
        server.requests()[3],
        "/api/v1/namespaces/default/configmaps?&limit=500"
    );
    eventually("a report of the relist", || {
        recorder.reports.lock().iter().any(|r| r.relists == 1)
    })
    .await;
}

#[actix_rt::test]
async fn should_wait_as_long_as_retry_after_says() {
    let server = FakeServer::default();
    let too_many = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
        "reason": "TooManyRequests", "message": "slow down"});
    server.answer(Answer::Json {
        code: 429,
        body: too_many.to_string(),
        retry_after: Some(2),
    });
    server
        .json(200, page(10, None, vec![]))
        .answer(Answer::Watch);
    let started = tokio::time::Instant::now();
    let (_reflector, recorder, _keep) = start(&server, ReflectorConfig::default());
    eventually("the replace", || !recorder.batches.lock().is_empty()).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retried after {:?}",
        started.elapsed()
    );
    let reports = recorder.reports.lock().clone();
    assert!(
        reports.iter().any(|r| matches!(r.state, ReflectorState::BackingOff { retry_in, .. } if retry_in >= Duration::from_secs(2))),
        "{reports:?}"
    );
}

#[actix_rt::test]
async fn should_report_forbidden_once_without_retrying_soon() {
    let server = FakeServer::default();
    let forbidden = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
        "reason": "Forbidden", "message": "configmaps is forbidden"});
    server.json(403, forbidden);
    let (_reflector, recorder, _keep) = start(&server, ReflectorConfig::default());
    eventually("a forbidden report", || {
        recorder
            .reports
            .lock()
            .iter()
            .any(|r| matches!(r.state, ReflectorState::Forbidden { .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests().len(), 1, "retried within half a second");
    let forbidden_reports = recorder
        .reports
        .lock()
        .iter()
        .filter(|r| matches!(r.state, ReflectorState::Forbidden { .. }))
        .count();
    assert_eq!(forbidden_reports, 1);
}

#[actix_rt::test]
async fn should_replace_from_streaming_initial_events_and_fall_back_when_refused() {
    let server = FakeServer::default();
    server.answer(Answer::Watch).answer(Answer::Watch);
    let config = ReflectorConfig {
        streaming_lists: true,
        ..ReflectorConfig::default()
    };
    let (_reflector, recorder, _keep) = start(&server, config);
    eventually("the streaming watch", || server.watches.lock().len() == 1).await;
    let end = serde_json::json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"resourceVersion": "9", "annotations": {"k8s.io/initial-events-end": "true"}}}});
    server.push(&[
        event("ADDED", cm("a", 3)),
        event("ADDED", cm("b", 5)),
        end,
        event("ADDED", cm("c", 10)),
    ]);
    eventually("a batch", || !recorder.batches.lock().is_empty()).await;
    assert_eq!(
        batches(&recorder),
        vec![vec!["Replace [a,b] @9".to_owned(), "Added c@10".to_owned()]]
    );
    let first = &server.requests()[0];
    assert!(
        first.contains("sendInitialEvents=true")
            && first.contains("resourceVersionMatch=NotOlderThan"),
        "{first}"
    );

    let refused = FakeServer::default();
    let invalid = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 422,
        "reason": "Invalid", "message": "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"});
    refused
        .json(422, invalid)
        .json(200, page(10, None, vec![cm("a", 3)]))
        .answer(Answer::Watch);
    let (_reflector, recorder, _keep) = start(
        &refused,
        ReflectorConfig {
            streaming_lists: true,
            ..ReflectorConfig::default()
        },
    );
    eventually("the fallback list", || !recorder.batches.lock().is_empty()).await;
    assert_eq!(batches(&recorder), vec![vec!["Replace [a] @10".to_owned()]]);
    assert!(
        refused.requests()[1].contains("limit=500"),
        "{:?}",
        refused.requests()
    );
    eventually("a fallback report", || {
        recorder.reports.lock().iter().any(|r| r.streaming_refused)
    })
    .await;
}

#[actix_rt::test]
async fn should_close_the_watch_and_report_stopped_on_stop() {
    let server = FakeServer::default();
    server
        .json(200, page(10, None, vec![]))
        .answer(Answer::Watch);
    let (reflector, recorder, _keep) = start(&server, ReflectorConfig::default());
    eventually("the watch", || server.watches.lock().len() == 1).await;
    reflector.do_send(StopReflector);
    eventually("the stopped report", || {
        recorder
            .reports
            .lock()
            .last()
            .is_some_and(|r| r.state == ReflectorState::Stopped)
    })
    .await;
    eventually("the watch closed", || server.watches.lock()[0].is_closed()).await;
    assert!(!reflector.connected());
}

#[actix_rt::test]
async fn should_stop_when_the_sink_is_gone() {
    let server = FakeServer::default();
    server
        .json(200, page(10, None, vec![]))
        .answer(Answer::Watch);
    let (reflector, _recorder, recorder_addr) = start(&server, ReflectorConfig::default());
    eventually("the watch", || server.watches.lock().len() == 1).await;
    recorder_addr.do_send(StopRecorder);
    eventually("the recorder to stop", || !recorder_addr.connected()).await;
    server.push(&[event("ADDED", cm("a", 11))]);
    eventually("the reflector to stop", || !reflector.connected()).await;
}

/// Stops the recorder (the sink disappears).
#[derive(Message)]
#[rtype(result = "()")]
struct StopRecorder;

impl Handler<StopRecorder> for Recorder {
    type Result = ();
    fn handle(&mut self, _: StopRecorder, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix_rt::test]
async fn should_decode_events_split_across_chunks() {
    let server = FakeServer::default();
    server
        .json(200, page(10, None, vec![]))
        .answer(Answer::Watch);
    let (_reflector, recorder, _keep) = start(&server, ReflectorConfig::default());
    eventually("the watch", || server.watches.lock().len() == 1).await;
    let line = format!("{}\n", event("ADDED", cm("split", 11)));
    let (head, tail) = line.split_at(line.len() / 2);
    server.push_raw(head);
    server.push_raw(tail);
    server.push_raw("\n");
    server.push(&[event("ADDED", cm("whole", 12))]);
    eventually("both events", || batches(&recorder).concat().len() == 3).await;
    assert_eq!(
        batches(&recorder).concat(),
        ["Replace [] @10", "Added split@11", "Added whole@12"]
    );
}
