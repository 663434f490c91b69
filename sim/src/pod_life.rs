//! One churned pod's life as its kubelet reports it: the phase, readiness and container
//! restarts the [`crate::churn`] generator moves it through, and the `/status` strategic
//! merge patches that report each step the way the kubelet's status manager does.
//!
//! Contract:
//! - A pod is created `Pending` (scheduled, containers `ContainerCreating`, `Ready=False`),
//!   then starts (`Running`, containers running, `Ready=True`), may lose and regain
//!   readiness, may have its `app` container restart (`restartCount` + 1, the old run in
//!   `lastState.terminated`, `Ready=False` until readiness returns), and may end:
//!   `Succeeded` when it runs to completion (`restartPolicy: OnFailure`, exit code 0) or
//!   `Failed` when the kubelet evicts it (`restartPolicy: Always`, `reason: Evicted`).
//! - The `Ready` and `ContainersReady` conditions are written with a new
//!   `lastTransitionTime` only when their status flips, as the kubelet does; a step that
//!   leaves readiness as it was does not touch their times.
//! - `containerStatuses` has no merge key in a real server (a patch replaces the whole list),
//!   so every patch carries the full list, kept here between steps.

use serde_json::{Value, json};

/// Where a pod is in its life (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    fn parse(phase: &str) -> Phase {
        match phase {
            "Pending" => Phase::Pending,
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            _ => Phase::Running,
        }
    }
}

/// A status change the kubelet reports for a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `Pending` → `Running`, containers started and ready.
    Start,
    /// Readiness probe failed (`Ready` → `False`) or passed again (→ `True`).
    FlipReady,
    /// The `app` container exited and was restarted.
    Restart,
    /// The pod ended: `Succeeded` or `Failed` by its restart policy.
    Finish,
}

/// What the churn knows of one pod's status: enough to write the next step's patch.
#[derive(Debug, Clone)]
pub(crate) struct PodLife {
    phase: Phase,
    ready: bool,
    /// `restartPolicy: Always` pods never succeed: they end `Failed` (evicted).
    restarts_always: bool,
    /// The full `containerStatuses` list as last written (the `app` container first).
    containers: Vec<Value>,
}

impl PodLife {
    /// Turns a realistic (running) pod into one the scheduler has just bound: `Pending`,
    /// created `now`, containers `ContainerCreating`. Every `job_every`-th pod (by `seq`)
    /// gets `restartPolicy: OnFailure` and will run to completion; `job_every == 0` gives none.
    pub(crate) fn pending(pod: &mut Value, seq: u64, job_every: u64, now: &str) -> PodLife {
        let restarts_always = job_every == 0 || !seq.is_multiple_of(job_every);
        if !restarts_always {
            pod["spec"]["restartPolicy"] = json!("OnFailure");
        }
        pod["metadata"]["creationTimestamp"] = json!(now);
        let containers = pod["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut life = PodLife {
            phase: Phase::Pending,
            ready: false,
            restarts_always,
            containers,
        };
        for container in &mut life.containers {
            set(container, "ready", json!(false));
            set(container, "started", json!(false));
            set(
                container,
                "state",
                json!({"waiting": {"reason": "ContainerCreating"}}),
            );
        }
        let status = &mut pod["status"];
        status["phase"] = json!("Pending");
        status["startTime"] = json!(now);
        status["containerStatuses"] = Value::Array(life.containers.clone());
        status["conditions"] = json!([
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": null, "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
            not_ready("Ready", "ContainersNotReady", &life.unready_message(), now),
            not_ready("ContainersReady", "ContainersNotReady", &life.unready_message(), now),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
        ]);
        life
    }

    /// What a pod already in the store says of itself (pods the churn did not create).
    pub(crate) fn observe(pod: &Value) -> PodLife {
        let status = &pod["status"];
        let ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        PodLife {
            phase: Phase::parse(status["phase"].as_str().unwrap_or("Running")),
            ready,
            restarts_always: pod["spec"]["restartPolicy"].as_str().unwrap_or("Always") == "Always",
            containers: status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The phase as last written.
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether `step` applies to a pod in this state (only running pods restart, flip or end;
    /// only pending pods start).
    pub(crate) fn allows(&self, step: Step) -> bool {
        match step {
            Step::Start => self.phase == Phase::Pending,
            Step::FlipReady | Step::Restart | Step::Finish => self.phase == Phase::Running,
        }
    }

    /// Applies `step` (which [`PodLife::allows`]) at time `now` and returns the `/status`
    /// strategic merge patch that reports it. `exit_code` is the exit code of a restarted
    /// container.
    pub(crate) fn advance(&mut self, step: Step, now: &str, exit_code: i32) -> Value {
        let mut status = serde_json::Map::new();
        let mut conditions = Vec::new();
        match step {
            Step::Start => {
                self.phase = Phase::Running;
                for container in &mut self.containers {
                    set(container, "started", json!(true));
                    set(container, "state", json!({"running": {"startedAt": now}}));
                }
                conditions.push(json!({"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now}));
                self.set_ready(true, now, &mut conditions);
            }
            Step::FlipReady => {
                let ready = !self.ready;
                self.set_ready(ready, now, &mut conditions);
            }
            Step::Restart => {
                if let Some(app) = self.containers.first_mut() {
                    let restarts = app["restartCount"].as_u64().unwrap_or(0) + 1;
                    let started = app["state"]["running"]["startedAt"].clone();
                    let (reason, code) = if exit_code == 137 {
                        ("OOMKilled", 137)
                    } else {
                        ("Error", exit_code)
                    };
                    let container_id = app["containerID"].clone();
                    set(app, "restartCount", json!(restarts));
                    set(
                        app,
                        "lastState",
                        json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now, "containerID": container_id}}),
                    );
                    set(app, "state", json!({"running": {"startedAt": now}}));
                }
                // A restarted container is not ready until its readiness probe passes again.
                if self.ready {
                    self.set_ready(false, now, &mut conditions);
                }
            }
            Step::Finish => {
                let succeeded = !self.restarts_always;
                self.phase = if succeeded {
                    Phase::Succeeded
                } else {
                    Phase::Failed
                };
                let (code, reason) = if succeeded {
                    (0, "Completed")
                } else {
                    (137, "Error")
                };
                for container in &mut self.containers {
                    let started = container["state"]["running"]["startedAt"].clone();
                    let container_id = container["containerID"].clone();
                    set(container, "started", json!(false));
                    set(
                        container,
                        "state",
                        json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now, "containerID": container_id}}),
                    );
                }
                if !succeeded {
                    status.insert("reason".into(), json!("Evicted"));
                    status.insert(
                        "message".into(),
                        json!("The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi."),
                    );
                }
                if self.ready {
                    self.set_ready(false, now, &mut conditions);
                }
                // Readiness already False: only the reason changes, the transition time stays.
                for kind in ["Ready", "ContainersReady"] {
                    if !conditions.iter().any(|c| c["type"] == kind) {
                        conditions
                            .push(json!({"type": kind, "reason": "PodCompleted", "message": null}));
                    } else if let Some(c) = conditions.iter_mut().find(|c| c["type"] == kind) {
                        c["reason"] = json!("PodCompleted");
                        c["message"] = Value::Null;
                    }
                }
            }
        }
        status.insert("phase".into(), json!(self.phase.as_str()));
        status.insert(
            "containerStatuses".into(),
            Value::Array(self.containers.clone()),
        );
        if !conditions.is_empty() {
            status.insert("conditions".into(), Value::Array(conditions));
        }
        json!({"status": status})
    }

    /// Flips `Ready` and `ContainersReady` (and the containers' `ready`) to `ready`, with
    /// `now` as their transition time; a no-op when readiness is already `ready`.
    fn set_ready(&mut self, ready: bool, now: &str, conditions: &mut Vec<Value>) {
        if self.ready == ready {
            return;
        }
        self.ready = ready;
        for container in &mut self.containers {
            set(container, "ready", json!(ready));
        }
        for kind in ["Ready", "ContainersReady"] {
            conditions.push(if ready {
                // `null` removes the reason and message the not-ready condition carried.
                json!({"type": kind, "status": "True", "reason": null, "message": null, "lastTransitionTime": now})
            } else {
                not_ready(kind, "ContainersNotReady", &self.unready_message(), now)
            });
        }
    }

    fn unready_message(&self) -> String {
        let names: Vec<&str> = self
            .containers
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        format!("containers with unready status: [{}]", names.join(" "))
    }
}

fn not_ready(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": "False", "lastProbeTime": null, "lastTransitionTime": now, "reason": reason, "message": message})
}

fn set(container: &mut Value, key: &str, value: Value) {
    if let Some(map) = container.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::realistic_pod;

    fn condition<'a>(patch: &'a Value, kind: &str) -> Option<&'a Value> {
        patch["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)
    }

    #[test]
    fn a_pod_goes_from_pending_through_restarts_to_its_end() {
        let mut pod = realistic_pod("ns", "p", 4);
        let mut life = PodLife::pending(&mut pod, 4, 4, "2026-12-01T00:00:00Z");
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["spec"]["restartPolicy"], "OnFailure");
        assert!(!life.allows(Step::Restart) && life.allows(Step::Start));

        let start = life.advance(Step::Start, "2026-12-01T00:00:01Z", 1);
        assert_eq!(start["status"]["phase"], "Running");
        assert_eq!(condition(&start, "Ready").unwrap()["status"], "True");

        let restart = life.advance(Step::Restart, "2026-12-01T00:00:02Z", 137);
        let app = &restart["status"]["containerStatuses"][0];
        assert_eq!(app["restartCount"], 1);
        assert_eq!(app["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(
            app["lastState"]["terminated"]["startedAt"],
            "2026-12-01T00:00:01Z"
        );
        assert_eq!(condition(&restart, "Ready").unwrap()["status"], "False");

        // Already not ready: a second restart leaves the Ready condition alone.
        let again = life.advance(Step::Restart, "2026-12-01T00:00:03Z", 1);
        assert_eq!(again["status"]["containerStatuses"][0]["restartCount"], 2);
        assert!(condition(&again, "Ready").is_none(), "{again}");

        let end = life.advance(Step::Finish, "2026-12-01T00:00:04Z", 0);
        assert_eq!(end["status"]["phase"], "Succeeded");
        let ready = condition(&end, "Ready").unwrap();
        assert!(ready.get("lastTransitionTime").is_none(), "{ready}");
        assert!(!life.allows(Step::FlipReady));
    }

    #[test]
    fn an_always_restarting_pod_ends_evicted() {
        let mut pod = realistic_pod("ns", "p", 5);
        let mut life = PodLife::pending(&mut pod, 5, 4, "2026-12-01T00:00:00Z");
        life.advance(Step::Start, "2026-12-01T00:00:01Z", 1);
        let end = life.advance(Step::Finish, "2026-12-01T00:00:02Z", 1);
        assert_eq!(end["status"]["phase"], "Failed");
        assert_eq!(end["status"]["reason"], "Evicted");
        let ready = condition(&end, "Ready").unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["lastTransitionTime"], "2026-12-01T00:00:02Z");
    }

    #[test]
    fn a_seeded_pod_is_observed_running_and_ready() {
        let life = PodLife::observe(&realistic_pod("ns", "p", 1));
        assert_eq!(life.phase(), Phase::Running);
        assert!(life.ready && life.restarts_always);
        assert_eq!(life.containers.len(), 2);
    }
}
