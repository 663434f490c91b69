//! A cluster given to the runtime as a ready `kube::Client` (in code, through
//! [`RuntimeBuilder::cluster`](crate::RuntimeBuilder::cluster)) instead of a kubeconfig.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers given clients, so that each one is its own cluster identity.
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

/// A `kube::Client` the program built itself. A client does not tell which server and user
/// it reaches, so each `GivenClient` is its own cluster identity: pipelines are shared
/// between the informers of one entry, never with another entry. Equal only to its clones.
#[derive(Clone)]
pub struct GivenClient {
    client: kube::Client,
    number: u64,
}

impl GivenClient {
    /// Wraps `client`, with an identity of its own.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            number: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Process-unique; names the identity.
    pub fn number(&self) -> u64 {
        self.number
    }
}

impl PartialEq for GivenClient {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
    }
}

impl fmt::Debug for GivenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GivenClient#{}", self.number)
    }
}
