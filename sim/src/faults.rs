//! Fault injection, per cluster: the failures a controller meets against real API servers
//! (API Priority and Fairness 429s, 500s, slow answers, watches that go silent or drop,
//! RBAC 403s, etcd compaction, a server without the WatchList gate, restarts), switched on
//! and off at run time from tests or the CLI.
//!
//! Injected failures hit resource requests only (`/api/v1/...`, `/apis/<g>/<v>/...`):
//! discovery, `/version` and health checks keep working, so kubectl and kube clients can
//! still start against a faulty cluster.
//!
//! The exception is a **partition** ([`Faults::partition`]): clients whose `User-Agent`
//! contains a given string are cut off from the cluster, every path included, as a network
//! partition between one replica and one API server. What such a client sees is what a
//! dropped network path looks like from its side: its open watches go silent (no events, no
//! bookmarks, no end) and every new request gets no answer at all, until the client gives up
//! (its own timeout) or the partition is lifted; then the waiting requests' connections are
//! closed without an answer (as a connection that died while the path was down) and the
//! silent watches end, so the client reconnects. Other clients are served as usual.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::store::{ClusterStore, Status};

/// The fault switches of one cluster. Cheap to clone; all clones share the switches.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    store: Arc<RwLock<ClusterStore>>,
    /// Cancelled (and replaced) by [`Faults::drop_watches`]: ends the stalled watches open now.
    stalls_end: Arc<Mutex<CancellationToken>>,
    /// Cancelled (and replaced) whenever the set of partitions changes, to wake the requests
    /// and watches that wait on it.
    partitions_changed: Arc<Mutex<CancellationToken>>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct FaultState {
    fail_next: u32,
    fail_next_code: u16,
    fail_fraction: f64,
    fail_fraction_code: u16,
    latency: Duration,
    stall_watches: bool,
    forbidden: HashSet<String>,
    refuse_watch_list: bool,
    /// User-Agent substrings cut off by [`Faults::partition`].
    partitions: HashSet<String>,
}

/// [`Faults::partition`] was asked to cut off every client (an empty agent substring).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a partition needs a non-empty User-Agent substring (an empty one would match every client)"
)]
pub struct EmptyAgentSubstring;

impl Faults {
    pub(crate) fn new(store: Arc<RwLock<ClusterStore>>) -> Faults {
        Faults {
            state: Arc::default(),
            store,
            stalls_end: Arc::default(),
            partitions_changed: Arc::default(),
        }
    }

    /// The next `n` resource requests are answered `code` (429 TooManyRequests with
    /// `Retry-After: 1`, or 500 InternalError; other codes get a generic Status) instead of served.
    pub fn fail_next(&self, n: u32, code: u16) {
        let mut state = self.state.lock();
        state.fail_next = n;
        state.fail_next_code = code;
    }

    /// Each resource request fails with `code` with probability `f` (0 switches it off).
    pub fn fail_fraction(&self, f: f64, code: u16) {
        let mut state = self.state.lock();
        state.fail_fraction = f.clamp(0.0, 1.0);
        state.fail_fraction_code = code;
    }

    /// Every resource request waits this long before being served.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// New watches get their response headers, then nothing (until the client gives up, the
    /// server stops or [`Faults::drop_watches`] ends them). Switching it off does not revive
    /// the watches already stalled, as a network path coming back does not revive a dead
    /// connection.
    pub fn stall_watches(&self, stall: bool) {
        self.state.lock().stall_watches = stall;
    }

    /// Every request on `plural` gets 403 Forbidden, worded as RBAC words it.
    pub fn forbid(&self, plural: &str) {
        self.state.lock().forbidden.insert(plural.to_string());
    }

    /// Undoes [`Faults::forbid`].
    pub fn allow(&self, plural: &str) {
        self.state.lock().forbidden.remove(plural);
    }

    /// Watches with `sendInitialEvents` are refused with the 422 a v1.28 server without the
    /// WatchList feature gate gives (`sendInitialEvents is forbidden for watch unless the
    /// WatchList feature gate is enabled`); clients then fall back to list + watch.
    pub fn refuse_watch_list(&self, refuse: bool) {
        self.state.lock().refuse_watch_list = refuse;
    }

    /// Closes every open watch now, stalled ones included (clients see their streams end).
    pub fn drop_watches(&self) {
        self.store.read().drop_watches();
        std::mem::take(&mut *self.stalls_end.lock()).cancel();
    }

    /// Forgets watch history and list snapshots: older resumes and continues get 410.
    pub fn compact(&self) {
        self.store.read().compact();
    }

    /// Cuts off (`on`) or reconnects (`!on`) the clients whose `User-Agent` contains
    /// `agent_substring` (case-sensitive): see the module documentation for what they see.
    /// Several partitions can be on at once; each is lifted by its own substring.
    pub fn partition(&self, agent_substring: &str, on: bool) -> Result<(), EmptyAgentSubstring> {
        if agent_substring.is_empty() {
            return Err(EmptyAgentSubstring);
        }
        {
            let mut state = self.state.lock();
            if on {
                state.partitions.insert(agent_substring.to_string());
            } else {
                state.partitions.remove(agent_substring);
            }
        }
        self.partitions_changed_now();
        Ok(())
    }

    /// The User-Agent substrings cut off now, sorted.
    pub fn partitions(&self) -> Vec<String> {
        let mut partitions: Vec<String> = self.state.lock().partitions.iter().cloned().collect();
        partitions.sort();
        partitions
    }

    /// Whether a client with this User-Agent is cut off now.
    pub fn is_partitioned(&self, user_agent: &str) -> bool {
        self.state
            .lock()
            .partitions
            .iter()
            .any(|cut| user_agent.contains(cut.as_str()))
    }

    /// Returns once a client with this User-Agent is cut off (at once if it is now).
    pub(crate) async fn until_partitioned(&self, user_agent: &str) {
        self.until_partition_is(user_agent, true).await
    }

    /// Returns once a client with this User-Agent is no longer cut off.
    pub(crate) async fn until_reachable(&self, user_agent: &str) {
        self.until_partition_is(user_agent, false).await
    }

    async fn until_partition_is(&self, user_agent: &str, cut: bool) {
        loop {
            // Token first, state second: a change after the check cancels this token.
            let changed = self.partitions_changed.lock().clone();
            if self.is_partitioned(user_agent) == cut {
                return;
            }
            changed.cancelled().await;
        }
    }

    fn partitions_changed_now(&self) {
        std::mem::take(&mut *self.partitions_changed.lock()).cancel();
    }

    /// Switches every fault off (partitions included).
    pub fn clear(&self) {
        *self.state.lock() = FaultState::default();
        self.partitions_changed_now();
    }

    /// A failure to answer instead of serving this request, if one is due.
    pub(crate) fn injected_failure(&self) -> Option<Status> {
        let mut state = self.state.lock();
        let code = if state.fail_next > 0 {
            state.fail_next -= 1;
            state.fail_next_code
        } else if state.fail_fraction > 0.0 && rand::random::<f64>() < state.fail_fraction {
            state.fail_fraction_code
        } else {
            return None;
        };
        Some(failure_status(code))
    }

    pub(crate) fn latency(&self) -> Duration {
        self.state.lock().latency
    }

    /// `Some(token)` when a new watch must stall: it ends when `token` is cancelled.
    pub(crate) fn watch_stall(&self) -> Option<CancellationToken> {
        let stalled = self.state.lock().stall_watches;
        stalled.then(|| self.stalls_end.lock().clone())
    }

    pub(crate) fn is_forbidden(&self, plural: &str) -> bool {
        self.state.lock().forbidden.contains(plural)
    }

    pub(crate) fn watch_list_refused(&self) -> bool {
        self.state.lock().refuse_watch_list
    }
}

/// The Status a real server sends with this code.
fn failure_status(code: u16) -> Status {
    match code {
        429 => Status {
            code,
            reason: "TooManyRequests".into(),
            message: "Too many requests, please try again later.".into(),
            details: Some(json!({"retryAfterSeconds": 1})),
            metadata: None,
        },
        500 => Status {
            code,
            reason: "InternalError".into(),
            message: "Internal error occurred: injected by panoptes-sim".into(),
            details: Some(json!({"causes": [{"message": "injected by panoptes-sim"}]})),
            metadata: None,
        },
        503 => Status {
            code,
            reason: "ServiceUnavailable".into(),
            message: "the server is currently unable to handle the request".into(),
            details: Some(json!({"retryAfterSeconds": 1})),
            metadata: None,
        },
        _ => Status {
            code,
            reason: "InternalError".into(),
            message: format!("injected failure {code}"),
            details: None,
            metadata: None,
        },
    }
}

/// The 422 of a watch with `sendInitialEvents` on a server without the WatchList gate
/// (k8s.io/apimachinery internalversion/validation `validateWatchOptions`, v1.28).
pub(crate) fn watch_list_disabled_status() -> Status {
    let cause = "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled";
    Status {
        code: 422,
        reason: "Invalid".into(),
        message: format!("ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: {cause}"),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [{"reason": "FieldValueForbidden", "message": cause, "field": "sendInitialEvents"}]
        })),
        metadata: None,
    }
}

/// 403 as RBAC denies `user` (status/403-forbidden-alice-*.json).
pub(crate) fn forbidden_status(
    user: &str,
    verb: &str,
    group: &str,
    plural: &str,
    subresource: Option<&str>,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Status {
    let qualified = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let subject = match name {
        Some(name) => format!("{qualified} {name:?}"),
        None => qualified,
    };
    let resource = match subresource {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.to_string(),
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_string(),
    };
    let mut details = serde_json::Map::new();
    if let Some(name) = name {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    details.insert("kind".into(), json!(plural));
    Status {
        code: 403,
        reason: "Forbidden".into(),
        message: format!(
            "{subject} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
        ),
        details: Some(serde_json::Value::Object(details)),
        metadata: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_rbac() {
        let list = forbidden_status("alice", "list", "", "pods", None, Some("fx"), None);
        assert_eq!(
            list.message,
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "fx""#
        );
        let get = forbidden_status("alice", "get", "", "pods", None, Some("fx"), Some("p1"));
        assert_eq!(
            get.message,
            r#"pods "p1" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "fx""#
        );
        assert_eq!(get.details, Some(json!({"name": "p1", "kind": "pods"})));
        let cluster = forbidden_status("alice", "list", "", "namespaces", None, None, None);
        assert!(
            cluster.message.ends_with("at the cluster scope"),
            "{}",
            cluster.message
        );
    }

    #[tokio::test]
    async fn partitions_match_agent_substrings_and_wake_waiters() {
        let faults = Faults::new(Arc::new(RwLock::new(ClusterStore::new(
            crate::store::StoreConfig::default(),
        ))));
        assert_eq!(faults.partition("", true), Err(EmptyAgentSubstring));
        faults.partition("shard b", true).unwrap();
        assert!(faults.is_partitioned("panoptes/0.1.0 (shard b)"));
        assert!(!faults.is_partitioned("panoptes/0.1.0 (shard a)"));
        assert_eq!(faults.partitions(), vec!["shard b".to_string()]);
        let waiter = {
            let faults = faults.clone();
            tokio::spawn(async move { faults.until_reachable("x (shard b)").await })
        };
        let cut = {
            let faults = faults.clone();
            tokio::spawn(async move { faults.until_partitioned("x (shard a)").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished() && !cut.is_finished());
        faults.partition("shard a", true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), cut)
            .await
            .expect("woken when cut off")
            .unwrap();
        faults.partition("shard b", false).unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken when reconnected")
            .unwrap();
        faults.clear();
        assert!(faults.partitions().is_empty());
    }

    #[test]
    fn failure_statuses_carry_retry_after_for_429() {
        assert_eq!(
            failure_status(429).details,
            Some(json!({"retryAfterSeconds": 1}))
        );
        assert_eq!(failure_status(500).reason, "InternalError");
    }
}
