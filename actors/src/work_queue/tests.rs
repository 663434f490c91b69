use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::controller_metrics::NoMetrics;

fn key(name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new("east"), Some("ns"), name)
}

fn key_on(cluster: &str, name: &str) -> ReconcileKey {
    ReconcileKey::new(ClusterId::new(cluster), Some("ns"), name)
}

fn core() -> QueueCore {
    QueueCore::new(RateLimits::default(), Arc::new(NoMetrics))
}

fn add(q: &mut QueueCore, k: &ReconcileKey, now: Instant) {
    q.add(k.clone(), tracing::Span::none(), now);
    q.check_invariants();
}

fn names(items: impl IntoIterator<Item = QueueItem>) -> Vec<String> {
    items.into_iter().map(|i| i.key.name).collect()
}

#[test]
fn should_queue_a_key_added_twice_once_and_keep_first_add_order() {
    let now = Instant::now();
    let mut q = core();
    for name in ["a", "b", "a", "c", "b"] {
        add(&mut q, &key(name), now);
    }
    let popped: Vec<_> = std::iter::from_fn(|| q.pop(now)).collect();
    assert_eq!(names(popped), ["a", "b", "c"]);
}

#[test]
fn should_process_a_key_added_while_processing_again_after_done_never_beside() {
    let now = Instant::now();
    let mut q = core();
    add(&mut q, &key("a"), now);
    let first = q.pop(now).expect("a is ready");
    add(&mut q, &key("a"), now);
    add(&mut q, &key("a"), now);
    assert!(
        q.pop(now).is_none(),
        "a is processing: not handed out twice"
    );
    assert_eq!(q.done(&first.key, Then::Forget, now), None);
    q.check_invariants();
    let second = q.pop(now).expect("a again after done");
    assert_eq!(second.key, key("a"));
    q.done(&second.key, Then::Forget, now);
    assert!(q.pop(now).is_none(), "the two re-adds coalesced into one");
}

#[test]
fn should_grow_backoff_per_item_and_reset_it_on_forget() {
    let now = Instant::now();
    let mut q = core();
    add(&mut q, &key("a"), now);
    let mut delays = Vec::new();
    for attempt in 0..4 {
        let item = q.pop(now).expect("a is ready");
        assert_eq!(item.requeues, attempt);
        let at = q.done(&item.key, Then::RateLimited, now).expect("a waits");
        delays.push(at - now);
        q.ready(&key("a"), at);
        q.check_invariants();
    }
    assert_eq!(delays, [5, 10, 20, 40].map(Duration::from_millis));
    assert_eq!(q.num_requeues(&key("a")), 4);
    let other = q.add_rate_limited(key("b"), now).expect("b waits");
    assert_eq!(other - now, Duration::from_millis(5), "backoff is per item");

    let item = q.pop(now).expect("a is ready");
    assert_eq!(q.done(&item.key, Then::Forget, now), None);
    assert_eq!(q.num_requeues(&key("a")), 0);
    add(&mut q, &key("a"), now);
    let item = q.pop(now).expect("a again");
    let at = q.done(&item.key, Then::RateLimited, now).expect("a waits");
    assert_eq!(at - now, Duration::from_millis(5), "forget started it over");
}

#[test]
fn should_keep_the_earlier_time_of_a_key_added_after_two_delays() {
    let now = Instant::now();
    let mut q = core();
    let late = q.add_after(
        key("a"),
        Duration::from_secs(10),
        tracing::Span::none(),
        now,
    );
    let early = q.add_after(key("a"), Duration::from_secs(2), tracing::Span::none(), now);
    assert_eq!(late, Some(now + Duration::from_secs(10)));
    assert_eq!(early, Some(now + Duration::from_secs(2)));
    assert_eq!(
        q.add_after(key("a"), Duration::from_secs(5), tracing::Span::none(), now),
        None
    );
    q.ready(&key("a"), now + Duration::from_secs(1));
    assert!(q.pop(now).is_none(), "not yet");
    q.ready(&key("a"), now + Duration::from_secs(2));
    assert_eq!(q.pop(now).map(|i| i.key), Some(key("a")));
    q.ready(&key("a"), now + Duration::from_secs(10));
    assert_eq!(q.len().queued, 0, "the later timer finds nothing to add");
}

#[test]
fn should_drop_everything_of_a_cluster_that_left() {
    let now = Instant::now();
    let mut q = core();
    add(&mut q, &key_on("west", "busy"), now);
    let busy = q.pop(now).unwrap();
    add(&mut q, &key_on("west", "busy"), now);
    add(&mut q, &key_on("west", "a"), now);
    add(&mut q, &key_on("east", "b"), now);
    q.add_after(
        key_on("west", "c"),
        Duration::from_secs(1),
        tracing::Span::none(),
        now,
    );
    q.add_rate_limited(key_on("west", "d"), now);
    q.forget_cluster(&ClusterId::new("west"));
    q.check_invariants();
    assert_eq!(q.num_requeues(&key_on("west", "d")), 0);
    assert_eq!(q.done(&busy.key, Then::RateLimited, now), None);
    let left: Vec<_> = std::iter::from_fn(|| q.pop(now)).map(|i| i.key).collect();
    assert_eq!(left, [key_on("east", "b")]);
    assert_eq!(q.len().delayed, 0);
}

#[test]
fn should_carry_the_spans_of_coalesced_adds() {
    let now = Instant::now();
    let mut q = core();
    let subscriber = tracing_subscriber_for_spans();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..(MAX_SPANS + 3) {
            q.add(key("a"), tracing::info_span!("event", i), now);
        }
    });
    let item = q.pop(now).unwrap();
    assert_eq!(item.spans.len(), MAX_SPANS);
}

/// A subscriber that enables every span, so spans are not `Span::none()`.
fn tracing_subscriber_for_spans() -> impl tracing::Subscriber + Send + Sync {
    struct All(std::sync::atomic::AtomicU64);
    impl tracing::Subscriber for All {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            let id = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::span::Id::from_u64(id)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    All(std::sync::atomic::AtomicU64::new(0))
}

// ---- the actor, on paused time ----

fn start(limits: RateLimits) -> Addr<WorkQueue> {
    WorkQueue::new(limits, Arc::new(NoMetrics)).start()
}

async fn get(q: &Addr<WorkQueue>) -> Option<QueueItem> {
    q.send(Get).await.expect("queue alive")
}

#[actix_rt::test]
async fn should_hold_the_token_bucket_rate_for_retries() {
    tokio::time::pause();
    let q = start(RateLimits {
        base_delay: Duration::ZERO,
        ..RateLimits::default()
    });
    let begin = Instant::now();
    for i in 0..130 {
        q.do_send(AddRateLimited {
            key: key(&format!("k{i:03}")),
        });
    }
    let mut at = Vec::new();
    for _ in 0..130 {
        let item = get(&q).await.expect("a key");
        at.push(Instant::now() - begin);
        q.do_send(Done {
            key: item.key,
            then: Then::Forget,
        });
    }
    assert!(
        at[..100].iter().all(|d| *d < Duration::from_millis(1)),
        "burst of 100 at once"
    );
    // Past the burst: 10 per second, the n-th extra one at n * 100 ms.
    assert!(at[100] >= Duration::from_millis(100), "{:?}", at[100]);
    assert!(at[129] >= Duration::from_secs(3), "{:?}", at[129]);
    assert!(at[129] < Duration::from_millis(3100), "{:?}", at[129]);
}

#[actix_rt::test]
async fn should_hand_out_a_key_added_after_a_delay_only_once_it_passed() {
    tokio::time::pause();
    let q = start(RateLimits::default());
    let begin = Instant::now();
    q.do_send(AddAfter {
        key: key("later"),
        delay: Duration::from_secs(30),
        span: tracing::Span::none(),
    });
    q.do_send(Add {
        key: key("now"),
        span: tracing::Span::none(),
    });
    assert_eq!(get(&q).await.unwrap().key, key("now"));
    assert_eq!(get(&q).await.unwrap().key, key("later"));
    assert!(Instant::now() - begin >= Duration::from_secs(30));
}

#[actix_rt::test]
async fn should_retry_failures_with_growing_backoff_and_report_requeues() {
    tokio::time::pause();
    let q = start(RateLimits::default());
    q.do_send(Add {
        key: key("a"),
        span: tracing::Span::none(),
    });
    let mut gaps = Vec::new();
    let mut last = Instant::now();
    for attempt in 0..5 {
        let item = get(&q).await.unwrap();
        assert_eq!(item.requeues, attempt);
        gaps.push(Instant::now() - last);
        last = Instant::now();
        q.do_send(Done {
            key: item.key,
            then: Then::RateLimited,
        });
    }
    assert_eq!(q.send(NumRequeues(key("a"))).await.unwrap(), 5);
    let expected = [0, 5, 10, 20, 40].map(Duration::from_millis);
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            *gap >= want && *gap < want + Duration::from_millis(2),
            "{gaps:?}"
        );
    }
    q.do_send(Forget(key("a")));
    assert_eq!(q.send(NumRequeues(key("a"))).await.unwrap(), 0);
}

#[actix_rt::test]
async fn should_drain_queued_keys_on_a_draining_shutdown() {
    tokio::time::pause();
    let q = start(RateLimits::default());
    for name in ["a", "b", "c"] {
        q.do_send(Add {
            key: key(name),
            span: tracing::Span::none(),
        });
    }
    let a = get(&q).await.unwrap();
    let shutdown = actix::spawn(q.send(ShutDown(ShutdownMode::Drain)));
    tokio::task::yield_now().await;
    q.do_send(Add {
        key: key("late"),
        span: tracing::Span::none(),
    });
    q.do_send(Done {
        key: a.key,
        then: Then::RateLimited,
    });
    let mut rest = Vec::new();
    // A stopped queue answers `None` or, once gone, a closed mailbox: both mean "no more".
    while let Some(item) = q.send(Get).await.ok().flatten() {
        rest.push(item.key.name.clone());
        q.do_send(Done {
            key: item.key,
            then: Then::Forget,
        });
    }
    assert_eq!(
        rest,
        ["b", "c"],
        "queued keys drain; adds after shutdown are refused"
    );
    shutdown.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn should_drop_queued_keys_on_an_abandoning_shutdown_but_wait_for_the_busy_one() {
    tokio::time::pause();
    let q = start(RateLimits::default());
    for name in ["a", "b", "c"] {
        q.do_send(Add {
            key: key(name),
            span: tracing::Span::none(),
        });
    }
    let a = get(&q).await.unwrap();
    let shutdown = actix::spawn(q.send(ShutDown(ShutdownMode::Abandon)));
    let waiting = actix::spawn(q.send(Get));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!shutdown.is_finished(), "a is still being processed");
    q.do_send(Done {
        key: a.key,
        then: Then::Forget,
    });
    shutdown.await.unwrap().unwrap();
    assert!(
        waiting.await.unwrap().unwrap().is_none(),
        "b and c were abandoned"
    );
}
