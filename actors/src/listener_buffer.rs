//! A listener's backlog: the notifications one handler has not yet received, in order,
//! optionally coalesced per key so that memory is bounded by the number of keys.
//!
//! client-go's `processorListener` keeps an unbounded ring buffer (`pendingNotifications`,
//! whose TODO admits it can exhaust memory). Here a listener chooses:
//! - [`BufferMode::Ordered`]: every notification, in arrival order (client-go's behaviour).
//! - [`BufferMode::Coalescing`]: at most two pending notifications per key (a delete followed
//!   by a re-creation); the latest update wins, a delete supersedes earlier updates and cancels
//!   an add the handler never saw. Keys keep the position of their oldest pending change, so
//!   every key's sequence stays valid (nothing updated before added or after deleted).

use std::collections::{HashMap, VecDeque};

use crate::ids::ObjectKey;
use crate::notification::Notification;

/// How a listener buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferMode {
    /// Keep every notification (memory grows with the handler's lag).
    #[default]
    Ordered,
    /// Merge pending notifications per key (memory bounded by the number of keys).
    Coalescing,
}

/// A numbered notification. Numbers increase in arrival order; a merged notification keeps
/// the number of the oldest it absorbed.
pub type Numbered<K> = (u64, Notification<K>);

/// The events one listener has not delivered yet, ordered or coalesced per key
/// ([`BufferMode`]).
pub struct ListenerBuffer<K> {
    mode: BufferMode,
    ordered: VecDeque<Numbered<K>>,
    /// Coalescing mode: pending notifications per key, with the number of the oldest.
    /// Invariant: each slot holds one or two notifications; two only as `[Deleted, Added]`.
    by_key: HashMap<ObjectKey, (u64, Vec<Notification<K>>)>,
    /// Coalescing mode: keys in the order of their oldest pending notification. An entry
    /// whose number no longer matches its slot is stale (the slot was emptied) and skipped.
    /// Invariant: the front entry, if any, is not stale.
    key_order: VecDeque<(u64, ObjectKey)>,
    /// Stale entries in `key_order`; compacted away once they outnumber the live ones, so
    /// memory stays bounded by the number of keys.
    stale: usize,
    /// The number the next arriving notification gets.
    next_seq: u64,
    /// Notifications held (after merging).
    len: usize,
}

impl<K> ListenerBuffer<K> {
    /// An empty buffer of the given mode.
    pub fn new(mode: BufferMode) -> Self {
        Self {
            mode,
            ordered: VecDeque::new(),
            by_key: HashMap::new(),
            key_order: VecDeque::new(),
            stale: 0,
            next_seq: 0,
            len: 0,
        }
    }

    /// Notifications held (a coalesced pair counts two).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing to deliver.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys with something pending.
    pub fn pending_keys(&self) -> usize {
        match self.mode {
            BufferMode::Ordered => self.ordered.len(),
            BufferMode::Coalescing => self.by_key.len(),
        }
    }

    /// The number the next arriving notification will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The number of the oldest pending notification.
    pub fn front_seq(&self) -> Option<u64> {
        match self.mode {
            BufferMode::Ordered => self.ordered.front().map(|(seq, _)| *seq),
            BufferMode::Coalescing => self.key_order.front().map(|(seq, _)| *seq),
        }
    }

    /// Adds a notification; in coalescing mode it merges with the key's pending one.
    pub fn push(&mut self, note: Notification<K>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.mode {
            BufferMode::Ordered => {
                self.ordered.push_back((seq, note));
                self.len += 1;
            }
            BufferMode::Coalescing => self.merge(seq, note),
        }
    }

    fn merge(&mut self, seq: u64, note: Notification<K>) {
        let key = note.key().clone();
        let Some((_, slot)) = self.by_key.get_mut(&key) else {
            self.key_order.push_back((seq, key.clone()));
            self.by_key.insert(key, (seq, vec![note]));
            self.len += 1;
            return;
        };
        let before = slot.len();
        let last = slot.pop().expect("slots are never empty");
        match (last, note) {
            // The cache's state is already what is pending: nothing new to say.
            (last, Notification::Resync { .. }) => slot.push(last),
            (Notification::Added { key, initial, .. }, Notification::Updated { new, .. }) => slot
                .push(Notification::Added {
                    key,
                    obj: new,
                    initial,
                }),
            (Notification::Updated { key, old, .. }, Notification::Updated { new, .. }) => {
                slot.push(Notification::Updated { key, old, new })
            }
            (Notification::Resync { key, obj, .. }, Notification::Updated { new, .. }) => {
                slot.push(Notification::Updated { key, old: obj, new })
            }
            // The handler never saw it exist: drop both.
            (Notification::Added { .. }, Notification::Deleted { .. }) => {}
            (
                Notification::Updated { .. } | Notification::Resync { .. },
                deleted @ Notification::Deleted { .. },
            ) => slot.push(deleted),
            (last, next) => {
                slot.push(last);
                slot.push(next);
            }
        }
        let after = slot.len();
        self.len = self.len + after - before;
        if after == 0 {
            self.by_key.remove(&key);
            self.stale += 1;
            self.drop_stale_front();
            if self.stale > self.by_key.len() + 64 {
                let by_key = &self.by_key;
                self.key_order
                    .retain(|(seq, key)| by_key.get(key).is_some_and(|(s, _)| s == seq));
                self.stale = 0;
            }
        }
    }

    /// Takes the oldest pending notification.
    pub fn pop(&mut self) -> Option<Numbered<K>> {
        let popped = match self.mode {
            BufferMode::Ordered => self.ordered.pop_front(),
            BufferMode::Coalescing => {
                let (seq, key) = self.key_order.front().cloned()?;
                let (_, slot) = self
                    .by_key
                    .get_mut(&key)
                    .expect("the front entry is never stale");
                let note = slot.remove(0);
                if slot.is_empty() {
                    self.by_key.remove(&key);
                    self.key_order.pop_front();
                    self.drop_stale_front();
                }
                Some((seq, note))
            }
        };
        if popped.is_some() {
            self.len -= 1;
        }
        popped
    }

    /// Restores the invariant that the front of `key_order` is live.
    fn drop_stale_front(&mut self) {
        while let Some((seq, key)) = self.key_order.front() {
            match self.by_key.get(key) {
                Some((slot_seq, _)) if slot_seq == seq => break,
                _ => {
                    self.key_order.pop_front();
                    self.stale = self.stale.saturating_sub(1);
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let held: usize =
            self.ordered.len() + self.by_key.values().map(|(_, s)| s.len()).sum::<usize>();
        assert_eq!(held, self.len, "len out of date");
        if let Some((seq, key)) = self.key_order.front() {
            assert_eq!(
                self.by_key.get(key).map(|(s, _)| s),
                Some(seq),
                "stale front"
            );
        }
        for (key, (_, slot)) in &self.by_key {
            assert!(
                !slot.is_empty() && slot.len() <= 2,
                "{key}: {} pending",
                slot.len()
            );
            if slot.len() == 2 {
                assert!(
                    matches!(slot[0], Notification::Deleted { .. }),
                    "{key}: only a delete may precede"
                );
                assert!(
                    matches!(slot[1], Notification::Added { .. }),
                    "{key}: only an add may follow a delete"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;
    use crate::test_support::{pod, rv};

    fn added(name: &str, v: u64) -> Notification<Pod> {
        Notification::Added {
            key: ObjectKey::new(format!("ns/{name}")),
            obj: pod(name, v),
            initial: false,
        }
    }
    fn updated(name: &str, old: u64, new: u64) -> Notification<Pod> {
        Notification::Updated {
            key: ObjectKey::new(format!("ns/{name}")),
            old: pod(name, old),
            new: pod(name, new),
        }
    }
    fn deleted(name: &str, v: u64) -> Notification<Pod> {
        Notification::Deleted {
            key: ObjectKey::new(format!("ns/{name}")),
            obj: pod(name, v),
            final_state_unknown: false,
        }
    }
    fn resync(name: &str, v: u64) -> Notification<Pod> {
        Notification::Resync {
            key: ObjectKey::new(format!("ns/{name}")),
            obj: pod(name, v),
            generation: 1,
        }
    }

    fn drain(buffer: &mut ListenerBuffer<Pod>) -> Vec<String> {
        buffer.check_invariants();
        let mut out = Vec::new();
        while let Some((_, note)) = buffer.pop() {
            out.push(match note {
                Notification::Added { key, obj, .. } => format!("added {key}@{}", rv(&obj)),
                Notification::Updated { key, old, new } => {
                    format!("updated {key}@{}->{}", rv(&old), rv(&new))
                }
                Notification::Deleted { key, obj, .. } => format!("deleted {key}@{}", rv(&obj)),
                Notification::Resync { key, obj, .. } => format!("resync {key}@{}", rv(&obj)),
            });
            buffer.check_invariants();
        }
        out
    }

    #[test]
    fn should_keep_everything_in_order_when_ordered() {
        let mut b = ListenerBuffer::new(BufferMode::Ordered);
        for n in [added("a", 1), updated("a", 1, 2), updated("a", 2, 3)] {
            b.push(n);
        }
        assert_eq!(
            drain(&mut b),
            ["added ns/a@1", "updated ns/a@1->2", "updated ns/a@2->3"]
        );
    }

    #[test]
    fn should_let_the_latest_update_win_when_coalescing() {
        let mut b = ListenerBuffer::new(BufferMode::Coalescing);
        for n in [
            updated("a", 1, 2),
            added("b", 5),
            updated("a", 2, 3),
            updated("a", 3, 4),
            resync("a", 4),
        ] {
            b.push(n);
        }
        assert_eq!(b.len(), 2);
        assert_eq!(drain(&mut b), ["updated ns/a@1->4", "added ns/b@5"]);
    }

    #[test]
    fn should_let_a_delete_supersede_updates_and_cancel_an_unseen_add() {
        let mut b = ListenerBuffer::new(BufferMode::Coalescing);
        for n in [
            updated("a", 1, 2),
            deleted("a", 3),
            added("b", 4),
            updated("b", 4, 5),
            deleted("b", 6),
            added("c", 7),
        ] {
            b.push(n);
        }
        assert_eq!(drain(&mut b), ["deleted ns/a@3", "added ns/c@7"]);
    }

    #[test]
    fn should_keep_a_delete_before_a_recreation() {
        let mut b = ListenerBuffer::new(BufferMode::Coalescing);
        for n in [deleted("a", 1), added("a", 2), updated("a", 2, 3)] {
            b.push(n);
        }
        assert_eq!(drain(&mut b), ["deleted ns/a@1", "added ns/a@3"]);
    }

    #[test]
    fn should_number_merged_entries_by_their_oldest_arrival() {
        let mut b = ListenerBuffer::new(BufferMode::Coalescing);
        b.push(updated("a", 1, 2));
        b.push(added("b", 1));
        b.push(updated("a", 2, 3));
        assert_eq!(b.front_seq(), Some(0));
        assert_eq!(b.next_seq(), 3);
        b.pop();
        assert_eq!(b.front_seq(), Some(1));
    }

    #[test]
    fn should_stay_bounded_by_keys_under_churn() {
        let mut b = ListenerBuffer::new(BufferMode::Coalescing);
        let mut exists = [false; 37];
        for i in 1..10_000u64 {
            let k = (i * 7919 % 37) as usize;
            let name = format!("p{k}");
            let note = match (exists[k], i % 3) {
                (false, _) => added(&name, i),
                (true, 0) => deleted(&name, i),
                (true, _) => updated(&name, i - 1, i),
            };
            exists[k] = !matches!(note, Notification::Deleted { .. });
            b.push(note);
            assert!(b.pending_keys() <= 37);
            assert!(b.len() <= 2 * 37);
        }
        b.check_invariants();
        assert!(
            b.key_order.len() <= 2 * 37 + 64,
            "stale order entries pile up: {}",
            b.key_order.len()
        );
    }
}
