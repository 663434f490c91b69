//! The `panoptes` commands that run a `clusters.toml`: [`run`] (watch and report until
//! stopped) and [`check`] (validate the file and every cluster's reachability), and the one
//! that writes one: [`from_kubeconfig`] (`panoptes config from-kubeconfig`). The binary only
//! parses arguments and calls [`run::run`], [`check::check`] or
//! [`from_kubeconfig::from_kubeconfig`]; each returns a [`CliError`] whose exit code and
//! message are meant for humans.

pub mod check;
pub mod from_kubeconfig;
pub mod run;

use crate::config::ConfigError;

/// Why a command failed, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration could not be loaded: printed as the loader formats it. Exit 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Anything else (a cluster unreachable in `check`, a port taken, ...). Exit 1.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

impl CliError {
    /// 2 for configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError::Failed(error)
    }
}
