//! What every request handler of one cluster reads: its identity (name, token, version),
//! its state, faults and counters, its TLS material and address. It mirrors the apiserver's
//! `GenericAPIServer` config that the handler chain closes over.
//!
//! Imports flow one way: `cluster` (the public handle) builds a [`ClusterState`] and starts
//! `server` with it; `server` hands each request and the state to `router`, which hands
//! resource requests to `resources`. None of them imports `cluster`, and nothing here imports
//! the HTTP side.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::counters::Counters;
use crate::faults::Faults;
use crate::store::{ClusterStore, StoreConfig};
use crate::tls::ClusterTls;

/// The state of one cluster that requests are served from.
pub(crate) struct ClusterState {
    pub name: String,
    pub token: String,
    pub kubernetes_minor: u32,
    pub anonymous_auth: bool,
    /// Replaced by a restart without state; requests take a clone per request.
    pub store: Arc<RwLock<ClusterStore>>,
    pub store_config: StoreConfig,
    pub faults: Faults,
    pub counters: Counters,
    pub tls: ClusterTls,
    pub addr: SocketAddr,
}

impl ClusterState {
    /// The store serving requests now.
    pub fn store(&self) -> ClusterStore {
        self.store.read().clone()
    }
}
