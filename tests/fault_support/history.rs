//! What each handler saw, per (cluster, key), and the rules a valid history keeps: client-go's
//! per-object contract as a handler sees it.
//!
//! - `Added` only when the handler holds no state for the key; `Updated` and `Deleted` only
//!   when it does (so no update before an add, no second delete without an add between).
//! - An update starts from the state the handler last saw (`old` is what it was told).
//! - Resource versions never go backwards for a key — unless the server lost its state and
//!   the informer relisted: every pod carries the server "epoch" it was written in (an
//!   annotation bumped by each restart that loses state), and (epoch, resourceVersion) never
//!   goes backwards. A tombstone for a missed deletion carries the last state the cache knew,
//!   so its version may equal the previous one.
//! - The event names the cluster the handler's informer was given for that pipeline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use panoptes_actors::Event;

/// The annotation holding the server epoch a pod was written in.
pub const EPOCH: &str = "panoptes.test/epoch";

/// A pod's state as the checks compare it: (epoch, resourceVersion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub epoch: u64,
    pub rv: u64,
}

impl Version {
    pub fn of(pod: &Pod) -> Version {
        let epoch = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EPOCH))
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        let rv = pod
            .metadata
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        Version { epoch, rv }
    }
}

/// One event as a handler got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Added { at: Version, initial: bool },
    Updated { from: Version, to: Version },
    Deleted { at: Version, tombstone: bool },
}

/// `(cluster, namespace/name)`.
pub type Key = (String, String);

/// Every key's events in the order one handler got them. Clones share the record.
#[derive(Clone, Default)]
pub struct History {
    events: Arc<Mutex<HashMap<Key, Vec<Seen>>>>,
}

impl History {
    pub fn record(&self, event: &Event<Pod>) {
        let key = (event.cluster().to_string(), event.key().to_string());
        let seen = match event {
            Event::Added { obj, initial, .. } => Seen::Added {
                at: Version::of(obj),
                initial: *initial,
            },
            Event::Updated { old, new, .. } => Seen::Updated {
                from: Version::of(old),
                to: Version::of(new),
            },
            Event::Deleted {
                obj,
                final_state_unknown,
                ..
            } => Seen::Deleted {
                at: Version::of(obj),
                tombstone: *final_state_unknown,
            },
        };
        self.events
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(seen);
    }

    /// Each key's final state, or the first rule a key's history breaks.
    pub fn final_states(&self) -> Result<BTreeMap<Key, Version>, String> {
        let events = self.events.lock().unwrap();
        let mut states = BTreeMap::new();
        for (key, steps) in events.iter() {
            if let Some(version) = replay(key, steps)? {
                states.insert(key.clone(), version);
            }
        }
        Ok(states)
    }

    /// Events and missed-deletion tombstones recorded.
    pub fn counts(&self) -> (u64, u64) {
        let events = self.events.lock().unwrap();
        let all = events.values().map(|s| s.len() as u64).sum();
        let tombstones = events
            .values()
            .flatten()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Deleted {
                        tombstone: true,
                        ..
                    }
                )
            })
            .count() as u64;
        (all, tombstones)
    }

    /// The recorded history of one key (for failure messages).
    pub fn of(&self, key: &Key) -> Vec<Seen> {
        self.events
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

/// The final state of one key's history, or why it is impossible.
pub fn replay(key: &Key, steps: &[Seen]) -> Result<Option<Version>, String> {
    let mut state: Option<Version> = None;
    let mut latest: Option<Version> = None;
    for (i, step) in steps.iter().enumerate() {
        let bad = |why: &str| {
            Err(format!(
                "{key:?}: step {i} {step:?} {why}; history {steps:?}"
            ))
        };
        let at = match step {
            Seen::Added { at, .. } | Seen::Deleted { at, .. } => *at,
            Seen::Updated { to, .. } => *to,
        };
        if latest.is_some_and(|latest| at < latest) {
            return bad("goes back in (epoch, resourceVersion) without a state loss");
        }
        latest = Some(at);
        state = match (state, step) {
            (None, Seen::Added { at, .. }) => Some(*at),
            (None, _) => return bad("comes without the key being added"),
            (Some(_), Seen::Added { .. }) => return bad("adds a key that is present"),
            (Some(current), Seen::Updated { from, to }) => {
                if *from != current {
                    return bad(&format!(
                        "updates from {from:?}, but the handler held {current:?}"
                    ));
                }
                Some(*to)
            }
            (Some(current), Seen::Deleted { at, tombstone }) => {
                if *tombstone && *at != current {
                    return bad(&format!(
                        "is a tombstone for {at:?}, but the handler held {current:?}"
                    ));
                }
                None
            }
        };
    }
    Ok(state)
}

#[test]
fn replay_rejects_impossible_histories() {
    let key: Key = ("c".into(), "ns/p".into());
    let v = |epoch, rv| Version { epoch, rv };
    let added = Seen::Added {
        at: v(0, 5),
        initial: false,
    };
    let update = Seen::Updated {
        from: v(0, 5),
        to: v(0, 7),
    };
    let deleted = Seen::Deleted {
        at: v(0, 9),
        tombstone: false,
    };
    assert_eq!(
        replay(&key, &[added.clone(), update.clone()]),
        Ok(Some(v(0, 7)))
    );
    assert_eq!(
        replay(&key, &[added.clone(), update.clone(), deleted.clone()]),
        Ok(None)
    );
    assert!(
        replay(&key, std::slice::from_ref(&update)).is_err(),
        "update before add"
    );
    assert!(
        replay(&key, &[added.clone(), deleted.clone(), deleted.clone()]).is_err(),
        "deleted twice"
    );
    let backwards = Seen::Updated {
        from: v(0, 5),
        to: v(0, 3),
    };
    assert!(replay(&key, &[added.clone(), backwards]).is_err());
    let relisted_after_loss = Seen::Updated {
        from: v(0, 5),
        to: v(1, 3),
    };
    assert_eq!(
        replay(&key, &[added.clone(), relisted_after_loss]),
        Ok(Some(v(1, 3)))
    );
    let tombstone = Seen::Deleted {
        at: v(0, 5),
        tombstone: true,
    };
    assert_eq!(replay(&key, &[added.clone(), tombstone]), Ok(None));
    let stale_update = Seen::Updated {
        from: v(0, 4),
        to: v(0, 7),
    };
    assert!(replay(&key, &[added, stale_update]).is_err());
}
