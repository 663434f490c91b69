//! `panoptes-sim`: an embedded multi-cluster Kubernetes API server.
//!
//! INTERFACE CONTRACT (written before the implementation): the public items named here are
//! what the rest of the workspace (tests, runtime, benchmarks) will call. Names and
//! signatures are fixed; implementations are free.
//!
//! The HTTP side (to be built) exposes exactly these (all sync, usable from any runtime —
//! `Sim` runs its servers on its own tokio runtime threads and stops them on drop):
//!
//! - `SimOptions { clusters: usize, kubernetes_minor: u32 /* 28 */, store: store::StoreConfig,
//!    anonymous_auth: bool, worker_threads: usize }` + `Default` (1 cluster).
//! - `Sim::start(SimOptions) -> Result<Sim, SimError>`; `Sim::clusters(&self) -> &[SimCluster]`;
//!   `Sim::cluster(&self, i: usize) -> &SimCluster` (0-based; names "sim-1"..);
//!   `Sim::kubeconfig_yaml(&self) -> String` (all contexts, current = sim-1);
//!   `Sim::write_kubeconfig(&self, path: &Path) -> std::io::Result<()>`; `Sim::shutdown(self)`.
//! - `SimCluster` (Clone): `name() -> &str`, `url() -> String` (https://127.0.0.1:PORT),
//!   `ca_pem() -> String`, `token() -> String`, `kubeconfig_yaml() -> String` (one context named
//!   after the cluster), `store() -> store::ClusterStore`, `faults() -> Faults`,
//!   `counters() -> Counters`, `stop()`, `start()` (same port), `restart(keep_state: bool)`.
//! - `Faults` (Clone): `fail_next(n: u32, code: u16)`, `fail_fraction(f: f64, code: u16)`,
//!   `set_latency(Duration)`, `stall_watches(bool)` (open, send headers, then silence),
//!   `forbid(plural: &str)` / `allow(plural: &str)` (403 for the cluster's token),
//!   `refuse_watch_list(bool)` (sendInitialEvents rejected like a server without the WatchList
//!   gate), `drop_watches()`, `compact()`, `clear()`.
//! - `Counters` (Clone): `lists(plural) -> u64`, `watches(plural) -> u64`,
//!   `open_watches(plural) -> u64`, `requests() -> u64`, `reset()`.
//! - `cli::SimArgs` (clap `Args`) and `cli::run(SimArgs) -> anyhow/…Result<()>` for `panoptes sim`.
//!
//! ```ignore
//! let sim = panoptes_sim::Sim::start(panoptes_sim::SimOptions { clusters: 2, ..Default::default() })?;
//! let c = sim.cluster(0);                 // "sim-1"
//! let kubeconfig: String = c.kubeconfig_yaml(); // one context "sim-1", CA data, bearer token
//! c.faults().fail_next(3, 429);
//! assert_eq!(c.counters().watches("pods"), 0);
//! panoptes_sim::pods::seed(&c.store(), "default", 100);
//! let churn = panoptes_sim::churn::Churn::start(c.store(), panoptes_sim::churn::ChurnConfig::default());
//! ```

pub mod store;
pub mod pods;   // realistic pod factory + seeding (store side)
pub mod churn;  // churn generator (store side)
// HTTP side: server, tls, auth, discovery, table, faults, counters, kubeconfig, cli.
