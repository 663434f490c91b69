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
        /// The configuration file.
        file: PathBuf,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column in the file.
        column: usize,
    },
    /// Set (or overridden) by this environment variable.
    Env {
        /// The environment variable (`PANOPTES__...`).
        variable: String,
        /// The configuration file.
        file: PathBuf,
    },
    /// Not written anywhere: the error is about something missing from the file.
    Missing {
        /// The configuration file.
        file: PathBuf,
    },
}

/// A key and where its value came from; displays as `clusters.toml:12:1: [[clusters]] #2 name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Where the value came from.
    pub origin: Origin,
    /// The key, from the document's root (`[[clusters]] #2 name`).
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
    /// The file could not be read (missing, unreadable).
    #[error("{}: cannot read the configuration file: {source} (pass --config PATH, or run from a directory holding clusters.toml)", file.display())]
    Read {
        /// The configuration file.
        file: PathBuf,
        #[source]
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}:{line}:{column}: TOML syntax error near {key}: {message}", file.display())]
    Syntax {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column in the file.
        column: usize,
        /// The key nearest to the error.
        key: KeyPath,
        /// What is wrong, in words.
        message: String,
    },
    /// An unknown key, a missing required key or a value of the wrong type.
    #[error("{at}: {message}")]
    Schema {
        /// The key and where its value was written.
        at: Box<Position>,
        /// What is wrong, in words.
        message: String,
    },
    /// An environment override that could not be merged into the file's values.
    #[error("environment override {variables} (applied to {}): {message}", file.display())]
    Override {
        /// The variables involved, comma-separated.
        variables: String,
        /// The configuration file.
        file: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
    /// The file defines no `[[clusters]]`.
    #[error("{}:1:1: [[clusters]]: none defined; add at least one, e.g. [[clusters]] name = \"dev\" embedded = {{}}", file.display())]
    NoClusters {
        /// The configuration file.
        file: PathBuf,
    },
    /// Two `[[clusters]]` entries have the same name.
    #[error("{at}: \"{name}\" is used twice (first at line {first_line})")]
    DuplicateCluster {
        /// The key and where its value was written.
        at: Box<Position>,
        /// The cluster name as written.
        name: String,
        /// Line of the first entry with that name.
        first_line: usize,
    },
    /// A `[[watch]]` names a cluster that is not configured.
    #[error("{at}: no [[clusters]] entry is named \"{name}\" (known: {known})")]
    UnknownCluster {
        /// The key and where its value was written.
        at: Box<Position>,
        /// The cluster name as written.
        name: String,
        /// The cluster names that exist, comma-separated.
        known: String,
    },
    /// A `[[clusters]]` entry names no way, or more than one way, to reach its cluster.
    #[error("{at}: {problem}")]
    ClusterSource {
        /// The key and where its value was written.
        at: Box<Position>,
        /// What is wrong with the entry.
        problem: String,
    },
    /// The kubeconfig file does not exist.
    #[error("{at}: kubeconfig file {} does not exist", path.display())]
    KubeconfigMissing {
        /// The key and where its value was written.
        at: Box<Position>,
        /// The kubeconfig path, resolved against the configuration file's folder.
        path: PathBuf,
    },
    /// The kubeconfig file exists but cannot be read or parsed.
    #[error("{at}: kubeconfig file {} cannot be read: {message}", path.display())]
    KubeconfigUnreadable {
        /// The key and where its value was written.
        at: Box<Position>,
        /// The kubeconfig path, resolved against the configuration file's folder.
        path: PathBuf,
        /// What is wrong, in words.
        message: String,
    },
    /// The kubeconfig has no such context.
    #[error("{at}: context \"{context}\" is not in kubeconfig {} (it has: {available})", path.display())]
    ContextMissing {
        /// The key and where its value was written.
        at: Box<Position>,
        /// The context asked for.
        context: String,
        /// The kubeconfig path, resolved against the configuration file's folder.
        path: PathBuf,
        /// The contexts the file has, comma-separated.
        available: String,
    },
    /// `resource` is not `[group/]version/plural`.
    #[error("{at}: {source}")]
    Resource {
        /// The key and where its value was written.
        at: Box<Position>,
        #[source]
        /// The I/O error.
        source: ResourceRefError,
    },
    /// A label or field selector the API server would refuse.
    #[error("{at}: {source}")]
    Selector {
        /// The key and where its value was written.
        at: Box<Position>,
        #[source]
        /// The I/O error.
        source: SelectorError,
    },
    /// A duration (`resync = "30s"`) that does not parse.
    #[error("{at}: {source}")]
    Duration {
        /// The key and where its value was written.
        at: Box<Position>,
        #[source]
        /// The I/O error.
        source: DurationError,
    },
    /// A value of the right type but outside what it may be (a ratio above 1, a bad address).
    #[error("{at}: {message}")]
    Value {
        /// The key and where its value was written.
        at: Box<Position>,
        /// What is wrong, in words.
        message: String,
    },
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
