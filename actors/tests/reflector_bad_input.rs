//! The reflector against a raw HTTP server sending bytes a well-behaved API server never
//! would (duplicate keys, objects of the wrong kind, invalid or oversized watch frames,
//! truncated chunked bodies, expired `continue` tokens): it never panics, caches what it can
//! decode, and names what it could not.

mod sim_support;

mod raw_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::ids::ClusterId;
use panoptes_actors::managed_fields::ManagedFields;
use panoptes_actors::quarantine::BadInput;
use panoptes_actors::reflector::{
    Reflector, ReflectorBatch, ReflectorConfig, ReflectorDelta, ReflectorReport,
};
use parking_lot::Mutex;
use raw_server::{End, RawServer, Reply};
use sim_support::eventually;

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
    let body = page(
        9,
        None,
        &[pod("good-1", 5), twice.to_owned(), pod("good-2", 7)],
    );
    let server = RawServer::start(move |target| {
        if is_watch(target) {
            Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(60)))
        } else {
            Reply::Json(200, body.clone())
        }
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    eventually("the list's Replace", WAIT, || {
        !recorder.replaces().is_empty()
    })
    .await;
    assert_eq!(recorder.replaces()[0], ["good-1", "good-2", "twice"]);
    assert!(recorder.last_report().is_some_and(|r| r.synced));
}

fn count(report: &ReflectorReport, reason: BadInput) -> u64 {
    report.bad_input.get(&reason).copied().unwrap_or(0)
}

/// The newest report, once one satisfies `check`.
async fn report_where(
    recorder: &Recorder,
    what: &str,
    check: impl Fn(&ReflectorReport) -> bool,
) -> ReflectorReport {
    eventually(what, WAIT, || {
        recorder.last_report().is_some_and(|r| check(&r))
    })
    .await;
    recorder.last_report().expect("a report")
}

/// Watch events, in order, as `ADDED name`.
fn watch_events(recorder: &Recorder) -> Vec<String> {
    let batches = recorder.batches.lock();
    let named =
        |kind: &str, o: &Pod| format!("{kind} {}", o.metadata.name.clone().unwrap_or_default());
    batches
        .iter()
        .flatten()
        .filter_map(|delta| match delta {
            ReflectorDelta::Added(o) => Some(named("ADDED", o)),
            ReflectorDelta::Modified(o) => Some(named("MODIFIED", o)),
            ReflectorDelta::Deleted(o) => Some(named("DELETED", o)),
            ReflectorDelta::Replace { .. } => None,
        })
        .collect()
}

/// A server whose every list answers one page (pod `a`, list version 9) and whose n-th watch
/// (from 0) answers `watch(n)`.
async fn listing_pod_a_then_watching(
    watch: impl Fn(u32) -> Reply + Send + Sync + 'static,
) -> RawServer {
    let opened = AtomicU32::new(0);
    RawServer::start(move |target| {
        if !is_watch(target) {
            return Reply::Json(200, page(9, None, &[pod("a", 5)]));
        }
        watch(opened.fetch_add(1, Ordering::SeqCst))
    })
    .await
}

/// The watch requests the server saw, in order.
fn watch_requests(server: &RawServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|t| is_watch(t))
        .collect()
}

fn event(kind: &str, object: &str) -> String {
    format!(r#"{{"type":"{kind}","object":{object}}}"#) + "\n"
}

#[actix_rt::test]
async fn should_cache_the_rest_of_a_list_and_quarantine_what_the_type_cannot_hold() {
    let wrong_kind = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"default","resourceVersion":"3"}}"#;
    let wrong_type = r#"{"metadata":{"name":"bad","namespace":"default","resourceVersion":"4"},"spec":{"containers":"nginx"}}"#;
    // Duplicate keys in the page itself: the last `items` wins, as in Go.
    let body = format!(
        r#"{{"kind":"PodList","metadata":{{"resourceVersion":"9"}},"items":[{}],"items":[{},{wrong_kind},{wrong_type},{}]}}"#,
        pod("stale", 2),
        pod("good-1", 5),
        pod("good-2", 6)
    );
    let server = RawServer::start(move |target| {
        if is_watch(target) {
            Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(60)))
        } else {
            Reply::Json(200, body.clone())
        }
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    let report = report_where(&recorder, "a synced report", |r| r.synced).await;
    assert_eq!(recorder.replaces(), [["good-1", "good-2"]]);
    let quarantined: Vec<_> = report
        .quarantined
        .iter()
        .map(|q| (q.key.as_str(), q.reason))
        .collect();
    assert_eq!(
        quarantined,
        [
            ("default/bad", BadInput::Undecodable),
            ("default/cm", BadInput::WrongKind)
        ]
    );
    assert_eq!(count(&report, BadInput::WrongKind), 1);
    assert_eq!(count(&report, BadInput::Undecodable), 1);
    assert_eq!(
        server.requests().iter().filter(|t| !is_watch(t)).count(),
        1,
        "no relist"
    );
}

#[actix_rt::test]
async fn should_skip_bad_watch_events_and_resume_after_invalid_frames() {
    let server = listing_pod_a_then_watching(|opened| {
        match opened {
            0 => Reply::chunked(
                vec![
                    // A wrong-kind object: quarantined, the stream goes on past its version.
                    event(
                        "ADDED",
                        r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"default","resourceVersion":"10"}}"#,
                    ),
                    // An oversized event: skipped without being buffered.
                    event("ADDED", &pod(&"x".repeat(3000), 11)),
                    // Duplicate keys in the envelope: the last `type` wins.
                    format!(r#"{{"type":"DELETED","type":"ADDED","object":{}}}"#, pod("b", 12)) + "\n",
                    // An invalid frame: the watch is reopened from the last version.
                    "{not json\n".to_owned(),
                ],
                End::Hang(Duration::from_secs(60)),
            ),
            // The resumed watch ends mid-event: a truncated body, resumed again.
            1 => Reply::chunked(
                vec![event("MODIFIED", &pod("b", 13)), r#"{"type":"ADD"#.to_owned()],
                End::Cut,
            ),
            _ => Reply::chunked(
                vec![event("ADDED", &pod("c", 14))],
                End::Hang(Duration::from_secs(60)),
            ),
        }
    })
    .await;
    let config = ReflectorConfig {
        max_event_bytes: 2048,
        ..dropping_managed_fields()
    };
    let (recorder, _reflector) = start(&server, config);
    eventually("the event after the resumes", WAIT, || {
        watch_events(&recorder).contains(&"ADDED c".to_owned())
    })
    .await;
    assert_eq!(
        watch_events(&recorder),
        ["ADDED b", "MODIFIED b", "ADDED c"]
    );
    let report = report_where(&recorder, "the counts", |r| {
        count(r, BadInput::TruncatedBody) == 1
    })
    .await;
    for reason in [
        BadInput::WrongKind,
        BadInput::Oversized,
        BadInput::InvalidFrame,
    ] {
        assert_eq!(count(&report, reason), 1, "{reason}");
    }
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].key, "default/s");
    let watch_requests = watch_requests(&server);
    assert_eq!(watch_requests.len(), 3, "{watch_requests:?}");
    assert!(
        watch_requests[1].contains("resourceVersion=12"),
        "{watch_requests:?}"
    );
    assert!(
        watch_requests[2].contains("resourceVersion=13"),
        "{watch_requests:?}"
    );
    assert_eq!(report.lists, 1, "resumed, never relisted");
}

/// A watch event that is not UTF-8 is an invalid frame even where the bad byte sits in
/// what the decoder would skip (a member `Pod` does not have, which serde_json's `from_slice`
/// passed unchecked): the watch is reopened from the last good version and the frame's
/// object is never cached.
#[actix_rt::test]
async fn should_resume_after_a_watch_event_that_is_not_utf8() {
    let server = listing_pod_a_then_watching(|opened| match opened {
        0 => {
            let text = event("ADDED", &pod("bad", 13).replacen('{', r#"{"x":"?","#, 1));
            let (head, tail) = text.split_once('?').expect("the placeholder");
            let bad = [head.as_bytes(), b"\xff", tail.as_bytes()].concat();
            Reply::chunked(
                vec![event("ADDED", &pod("b", 12)).into_bytes(), bad],
                End::Hang(Duration::from_secs(60)),
            )
        }
        _ => Reply::chunked(
            vec![event("ADDED", &pod("c", 14))],
            End::Hang(Duration::from_secs(60)),
        ),
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    eventually("the event after the resume", WAIT, || {
        watch_events(&recorder).contains(&"ADDED c".to_owned())
    })
    .await;
    assert_eq!(watch_events(&recorder), ["ADDED b", "ADDED c"]);
    let report = report_where(&recorder, "the count", |r| {
        count(r, BadInput::InvalidFrame) == 1
    })
    .await;
    assert!(report.quarantined.is_empty());
    assert_eq!(report.lists, 1, "resumed, never relisted");
    let watch_requests = watch_requests(&server);
    assert_eq!(watch_requests.len(), 2, "{watch_requests:?}");
    assert!(
        watch_requests[1].contains("resourceVersion=12"),
        "{watch_requests:?}"
    );
}

#[actix_rt::test]
async fn should_list_again_after_a_truncated_list_body() {
    let lists = Arc::new(AtomicU32::new(0));
    let listed = lists.clone();
    let server = RawServer::start(move |target| {
        if is_watch(target) {
            return Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(60)));
        }
        let body = page(9, None, &[pod("a", 5), pod("b", 6)]);
        if listed.fetch_add(1, Ordering::SeqCst) == 0 {
            let half = body.len() / 2;
            Reply::chunked(vec![body[..half].to_owned()], End::Cut)
        } else {
            Reply::chunked(vec![body], End::Complete)
        }
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    let report = report_where(&recorder, "a synced report", |r| r.synced).await;
    assert_eq!(recorder.replaces(), [["a", "b"]]);
    assert_eq!(count(&report, BadInput::TruncatedBody), 1);
    assert_eq!(lists.load(Ordering::SeqCst), 2);
}

#[actix_rt::test]
async fn should_restart_a_list_whose_continue_token_expired() {
    let server = RawServer::start(move |target| {
        if is_watch(target) {
            return Reply::Chunked(Vec::new(), End::Hang(Duration::from_secs(60)));
        }
        if target.contains("continue=stale") {
            let gone = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":410,"reason":"Expired","message":"The provided continue parameter is too old"}"#;
            return Reply::Json(410, gone.to_owned());
        }
        if target.contains("resourceVersion=") || !target.contains("limit=") {
            return Reply::Json(500, "{}".to_owned());
        }
        // The first page of a list from scratch: the first hands out a token that expires.
        Reply::Json(200, page(9, Some("stale"), &[pod("a", 5)]))
    })
    .await;
    let (recorder, _reflector) = start(&server, dropping_managed_fields());
    let report = report_where(&recorder, "an expired continue", |r| {
        count(r, BadInput::ExpiredContinue) >= 1
    })
    .await;
    assert!(!report.synced, "no partial list is ever delivered");
    assert!(recorder.replaces().is_empty());
    // The report of the expired token may reach the recorder before the fresh list's
    // request reaches the server.
    let firsts = || {
        server
            .requests()
            .iter()
            .filter(|t| !is_watch(t) && !t.contains("continue="))
            .count()
    };
    eventually("the list to restart from its first page", WAIT, || {
        firsts() >= 2
    })
    .await;
}

#[actix_rt::test]
async fn should_quarantine_initial_events_of_a_streaming_list_and_sync_the_rest() {
    let server = RawServer::start(move |target| {
        assert!(is_watch(target), "a streaming list only watches: {target}");
        let end = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"9","annotations":{"k8s.io/initial-events-end":"true"}}}"#;
        Reply::chunked(
            vec![
                event("ADDED", &pod("good", 5)),
                event(
                    "ADDED",
                    r#"{"metadata":{"name":"bad","namespace":"default","resourceVersion":"6"},"spec":7}"#,
                ),
                event("BOOKMARK", end),
            ],
            End::Hang(Duration::from_secs(60)),
        )
    })
    .await;
    let config = ReflectorConfig {
        streaming_lists: true,
        ..dropping_managed_fields()
    };
    let (recorder, _reflector) = start(&server, config);
    let report = report_where(&recorder, "a synced report", |r| r.synced).await;
    assert_eq!(recorder.replaces(), [["good"]]);
    let quarantined: Vec<_> = report.quarantined.iter().map(|q| q.key.as_str()).collect();
    assert_eq!(quarantined, ["default/bad"]);
    assert_eq!(count(&report, BadInput::Undecodable), 1);
    assert_eq!(report.last_resource_version, Some("9".into()));
}
