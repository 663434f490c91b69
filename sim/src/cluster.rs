//! One simulated cluster: its identity (name, CA, token), its state (a [`ClusterStore`]
//! that a restart may replace), its faults and counters, and its listener, which can be
//! stopped and started again on the same port (a control-plane restart, as clients see it).
//! The cluster owns its server; the server and its handlers see only the [`ClusterState`].

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::cluster_state::ClusterState;
use crate::counters::Counters;
use crate::faults::Faults;
use crate::kubeconfig::{KubeconfigEntry, render};
use crate::server::RunningServer;
use crate::store::{ClusterStore, StoreConfig};
use crate::tls::ClusterTls;

/// A handle on one simulated cluster. Cheap to clone.
#[derive(Clone)]
pub struct SimCluster {
    state: Arc<ClusterState>,
    runtime: tokio::runtime::Handle,
    server: Arc<Mutex<Option<RunningServer>>>,
}

/// Settings a cluster is made with.
pub(crate) struct ClusterSettings {
    pub name: String,
    pub kubernetes_minor: u32,
    pub anonymous_auth: bool,
    pub store_config: StoreConfig,
}

impl SimCluster {
    /// Makes the cluster's CA, token and store, binds 127.0.0.1:0 and starts serving.
    pub(crate) fn start_new(
        settings: ClusterSettings,
        runtime: tokio::runtime::Handle,
    ) -> Result<SimCluster, crate::SimError> {
        let tls = ClusterTls::generate(&settings.name)?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| crate::SimError::Bind {
                cluster: settings.name.clone(),
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| crate::SimError::Bind {
                cluster: settings.name.clone(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| crate::SimError::Bind {
                cluster: settings.name.clone(),
                source,
            })?;
        let store = Arc::new(RwLock::new(ClusterStore::new(
            settings.store_config.clone(),
        )));
        let state = Arc::new(ClusterState {
            token: random_token(),
            kubernetes_minor: settings.kubernetes_minor,
            anonymous_auth: settings.anonymous_auth,
            faults: Faults::new(store.clone()),
            store,
            store_config: settings.store_config,
            counters: Counters::default(),
            tls,
            addr,
            name: settings.name,
        });
        let server = RunningServer::start(state.clone(), listener, &runtime).map_err(|source| {
            crate::SimError::Bind {
                cluster: state.name.clone(),
                source,
            }
        })?;
        Ok(SimCluster {
            state,
            runtime,
            server: Arc::new(Mutex::new(Some(server))),
        })
    }

    /// "sim-1", "sim-2", ...
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// `https://127.0.0.1:PORT`; the port stays the same across stop/start.
    pub fn url(&self) -> String {
        format!("https://{}", self.state.addr)
    }

    /// The cluster's CA certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.state.tls.ca_pem.clone()
    }

    /// The bearer token of the cluster's admin user.
    pub fn token(&self) -> String {
        self.state.token.clone()
    }

    /// A kubeconfig with one context named after the cluster.
    pub fn kubeconfig_yaml(&self) -> String {
        render(&[self.kubeconfig_entry()], self.name())
    }

    pub(crate) fn kubeconfig_entry(&self) -> KubeconfigEntry {
        KubeconfigEntry {
            name: self.name().to_string(),
            server: self.url(),
            ca_pem: self.ca_pem(),
            token: self.token(),
        }
    }

    /// The store serving requests now (a restart without state replaces it).
    pub fn store(&self) -> ClusterStore {
        self.state.store()
    }

    /// The cluster's fault switches (latency, errors, stalled watches, ...); changes apply to the
    /// next requests.
    pub fn faults(&self) -> Faults {
        self.state.faults.clone()
    }

    /// The cluster's request counters (by verb, resource and status code).
    pub fn counters(&self) -> Counters {
        self.state.counters.clone()
    }

    /// Closes the listener and every connection (watches end); state is kept.
    /// Returns once the port is released. Does nothing when already stopped.
    pub fn stop(&self) {
        let running = self.server.lock().take();
        if let Some(server) = running {
            server.stop();
        }
    }

    /// Listens again on the same port. Does nothing when already running.
    /// Fails if another process took the port meanwhile.
    pub fn start(&self) -> Result<(), crate::SimError> {
        let mut server = self.server.lock();
        if server.is_some() {
            return Ok(());
        }
        let bind_err = |source| crate::SimError::Bind {
            cluster: self.state.name.clone(),
            source,
        };
        let listener = std::net::TcpListener::bind(self.state.addr).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        *server = Some(
            RunningServer::start(self.state.clone(), listener, &self.runtime).map_err(bind_err)?,
        );
        Ok(())
    }

    /// Stops, optionally replaces the state with a fresh cluster, and starts again on the same
    /// port. A fresh cluster is the lost one restored from an empty backup as etcd documents
    /// it ([`ClusterStore::restored_after`]): versions continue above the lost ones and clients
    /// resuming from those get 410 Expired and relist.
    pub fn restart(&self, keep_state: bool) -> Result<(), crate::SimError> {
        self.stop();
        if !keep_state {
            let mut store = self.state.store.write();
            let fresh = ClusterStore::restored_after(
                self.state.store_config.clone(),
                store.resource_version(),
            );
            let old = std::mem::replace(&mut *store, fresh);
            old.drop_watches();
        }
        self.start()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.server.lock().is_some()
    }
}

/// 32 random bytes, hex: a bearer token nobody guesses.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
