//! `ConfigError`: everything that can be wrong with `clusters.toml` or its environment
//! overrides. Each variant that concerns a value carries a [`Position`] — file, line, column
//! and key, or the environment variable that set the value — so the message alone tells the
//! reader where to look. None of them is retryable: fix the file (or variable) and start again.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use super::duration::DurationError;
use super::key_path::KeyPath;
use super::resource_ref::ResourceRefError;
use super::selector::SelectorError;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Written in the file at this 1-based line and column.
    File {
        file: PathBuf,
        line: usize,
        column: usize,
    },
    /// Set (or overridden) by this environment variable.
    Env { variable: String, file: PathBuf },
    /// Not written anywhere: the error is about something missing from the file.
    Missing { file: PathBuf },
}

/// A key and where its value came from; displays as `clusters.toml:12:1: [[clusters]] #2 name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub origin: Origin,
    pub key: KeyPath,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { file, line, column } => {
                write!(f, "{}:{line}:{column}: {}", file.display(), self.key)
            }
            Origin::Env { variable, file } => write!(
                f,
                "environment variable {variable} (overrides {} of {})",
                self.key,
                file.display()
            ),
            Origin::Missing { file } => write!(f, "{}:1:1: {}", file.display(), self.key),
        }
    }
}

/// A configuration that cannot be used, and why.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {source} (pass --config PATH, or run from a directory holding clusters.toml)", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: TOML syntax error near {key}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        key: KeyPath,
        message: String,
    },
    /// An unknown key, a missing required key or a value of the wrong type.
    #[error("{at}: {message}")]
    Schema { at: Box<Position>, message: String },
    /// An environment override that could not be merged into the file's values.
    #[error("environment override {variables} (applied to {}): {message}", file.display())]
    Override {
        variables: String,
        file: PathBuf,
        message: String,
    },
    #[error("{}:1:1: [[clusters]]: none defined; add at least one, e.g. [[clusters]] name = \"dev\" embedded = {{}}", file.display())]
    NoClusters { file: PathBuf },
    #[error("{at}: \"{name}\" is used twice (first at line {first_line})")]
    DuplicateCluster {
        at: Box<Position>,
        name: String,
        first_line: usize,
    },
    #[error("{at}: no [[clusters]] entry is named \"{name}\" (known: {known})")]
    UnknownCluster {
        at: Box<Position>,
        name: String,
        known: String,
    },
    #[error("{at}: {problem}")]
    ClusterSource { at: Box<Position>, problem: String },
    #[error("{at}: kubeconfig file {} does not exist", path.display())]
    KubeconfigMissing { at: Box<Position>, path: PathBuf },
    #[error("{at}: kubeconfig file {} cannot be read: {message}", path.display())]
    KubeconfigUnreadable {
        at: Box<Position>,
        path: PathBuf,
        message: String,
    },
    #[error("{at}: context \"{context}\" is not in kubeconfig {} (it has: {available})", path.display())]
    ContextMissing {
        at: Box<Position>,
        context: String,
        path: PathBuf,
        available: String,
    },
    #[error("{at}: {source}")]
    Resource {
        at: Box<Position>,
        #[source]
        source: ResourceRefError,
    },
    #[error("{at}: {source}")]
    Selector {
        at: Box<Position>,
        #[source]
        source: SelectorError,
    },
    #[error("{at}: {source}")]
    Duration {
        at: Box<Position>,
        #[source]
        source: DurationError,
    },
    /// A value of the right type but outside what it may be (a ratio above 1, a bad address).
    #[error("{at}: {message}")]
    Value { at: Box<Position>, message: String },
}

impl ConfigError {
    /// The position the error is about, when it is about one value.
    pub fn position(&self) -> Option<&Position> {
        match self {
            Self::Schema { at, .. }
            | Self::DuplicateCluster { at, .. }
            | Self::UnknownCluster { at, .. }
            | Self::ClusterSource { at, .. }
            | Self::KubeconfigMissing { at, .. }
            | Self::KubeconfigUnreadable { at, .. }
            | Self::ContextMissing { at, .. }
            | Self::Resource { at, .. }
            | Self::Selector { at, .. }
            | Self::Duration { at, .. }
            | Self::Value { at, .. } => Some(at.as_ref()),
            Self::Read { .. }
            | Self::Syntax { .. }
            | Self::Override { .. }
            | Self::NoClusters { .. } => None,
        }
    }
}
