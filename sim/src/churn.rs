//! The churn generator: creates, updates and deletes realistic pods at a given rate.
//!
//! INTERFACE CONTRACT: `ChurnConfig`, `Churn::start`, `Churn::stop`, `Churn::stats` are fixed.

use std::time::Duration;

use crate::store::ClusterStore;

#[derive(Debug, Clone)]
pub struct ChurnConfig {
    pub namespace: String,
    /// Pods kept alive on average (creates and deletes balance around it).
    pub target_pods: usize,
    /// Writes per second, all kinds together.
    pub rate_per_sec: f64,
    /// Share of writes that are updates (rest split between creates and deletes).
    pub update_fraction: f64,
    /// Stop after this many writes (None: until stopped).
    pub max_writes: Option<u64>,
    pub seed: u64,
}

impl Default for ChurnConfig {
    fn default() -> Self {
        Self { namespace: "default".into(), target_pods: 100, rate_per_sec: 10.0, update_fraction: 0.6, max_writes: None, seed: 1 }
    }
}

/// What a churn run did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChurnStats {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// A running churn generator (its own thread). Dropping it stops it.
pub struct Churn {
    // implementation-defined
}

impl Churn {
    pub fn start(store: ClusterStore, config: ChurnConfig) -> Churn {
        let _ = (store, config);
        todo!()
    }
    /// Stops and returns the final stats.
    pub fn stop(self) -> ChurnStats {
        todo!()
    }
    pub fn stats(&self) -> ChurnStats {
        todo!()
    }
    /// Waits until `max_writes` is reached (returns at once when unbounded), at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> ChurnStats {
        let _ = timeout;
        todo!()
    }
}
