//! Which log lines reach stderr: the filter a Rust user expects, built once for
//! [`telemetry::init`](crate::telemetry::init).
//!
//! # Contract
//!
//! - **`RUST_LOG` wins.** When the `RUST_LOG` environment variable is set (and not blank) it
//!   replaces `[telemetry] log`, as it does for every program built on `tracing-subscriber`
//!   or `env_logger`; otherwise `[telemetry] log` (itself overridable as
//!   `PANOPTES__TELEMETRY__LOG`) applies.
//! - **kube's retry noise stays out unless asked for.** kube's client logs every failed
//!   request at `ERROR` (`kube_client::client::builder: failed with error client error
//!   (Connect)`), once per retry, even at `log = "warn"`. Panoptes reports each pipeline's
//!   failure once, in its own words and with the whole source chain
//!   (`panoptes_actors::watch_error`), so [`KUBE_RETRY_NOISE`] is switched off — unless the
//!   chosen filter names `kube` or `kube_client` itself, in which case it is left exactly as
//!   written.
//! - A filter that does not parse is an error naming where it came from (`RUST_LOG` or
//!   `[telemetry] log`) and what is wrong; nothing falls back silently.

use tracing_subscriber::EnvFilter;

/// The environment variable that overrides `[telemetry] log`.
pub const RUST_LOG: &str = "RUST_LOG";

/// The directive added unless the filter mentions kube: kube's per-request failure log.
pub const KUBE_RETRY_NOISE: &str = "kube_client::client::builder=off";

/// Where the filter text came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    /// The `RUST_LOG` environment variable.
    RustLog,
    /// `[telemetry] log` in `clusters.toml` (or `PANOPTES__TELEMETRY__LOG`).
    Config,
}

impl std::fmt::Display for FilterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FilterSource::RustLog => "RUST_LOG",
            FilterSource::Config => "[telemetry] log",
        })
    }
}

/// The log filter could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} = \"{directive}\" is not a log filter: {message}")]
pub struct LogFilterError {
    /// Where the text came from.
    pub source_name: FilterSource,
    /// The text as given.
    pub directive: String,
    /// The parser's complaint.
    pub message: String,
}

/// The directives in effect and where they came from: `RUST_LOG` when set and not blank,
/// else `configured`; [`KUBE_RETRY_NOISE`] appended unless they name kube.
pub fn effective_directives(configured: &str, rust_log: Option<&str>) -> (String, FilterSource) {
    let (chosen, source) = match rust_log.map(str::trim) {
        Some(text) if !text.is_empty() => (text, FilterSource::RustLog),
        _ => (configured.trim(), FilterSource::Config),
    };
    if names_kube(chosen) {
        return (chosen.to_string(), source);
    }
    let directives = if chosen.is_empty() {
        KUBE_RETRY_NOISE.to_string()
    } else {
        format!("{chosen},{KUBE_RETRY_NOISE}")
    };
    (directives, source)
}

/// The filter for `configured` (`[telemetry] log`) and the process's `RUST_LOG`.
pub fn log_filter(configured: &str) -> Result<EnvFilter, LogFilterError> {
    let rust_log = std::env::var(RUST_LOG).ok();
    build(configured, rust_log.as_deref())
}

/// [`log_filter`] with `RUST_LOG` passed in (tests, embedders that read it elsewhere).
pub fn build(configured: &str, rust_log: Option<&str>) -> Result<EnvFilter, LogFilterError> {
    let (directives, source_name) = effective_directives(configured, rust_log);
    EnvFilter::try_new(&directives).map_err(|e| LogFilterError {
        source_name,
        directive: match source_name {
            FilterSource::RustLog => rust_log.unwrap_or_default().to_string(),
            FilterSource::Config => configured.to_string(),
        },
        message: e.to_string(),
    })
}

/// Whether a directive string sets a level for kube's crates (`kube`, `kube_client`,
/// `kube_client::…`), so the user asked for their logs.
fn names_kube(directives: &str) -> bool {
    directives.split(',').any(|directive| {
        let target = directive.split(['=', '[']).next().unwrap_or("").trim();
        target == "kube" || target == "kube_client" || target.starts_with("kube_client::")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_prefer_rust_log_when_set_and_not_blank() {
        assert_eq!(
            effective_directives("warn", Some("debug")),
            (format!("debug,{KUBE_RETRY_NOISE}"), FilterSource::RustLog)
        );
        assert_eq!(
            effective_directives("warn", Some("  ")),
            (format!("warn,{KUBE_RETRY_NOISE}"), FilterSource::Config)
        );
        assert_eq!(effective_directives("warn", None).1, FilterSource::Config);
    }

    #[test]
    fn should_leave_kube_alone_when_the_filter_names_it() {
        for asked in [
            "warn,kube_client=error",
            "info,kube=debug",
            "kube_client::client::builder=error",
        ] {
            assert_eq!(effective_directives(asked, None).0, asked);
        }
        assert_eq!(
            effective_directives("warn,kubectl_like=debug", None).0,
            format!("warn,kubectl_like=debug,{KUBE_RETRY_NOISE}")
        );
    }

    #[test]
    fn should_name_the_source_of_a_bad_filter() {
        let error = build("warn", Some("info,panoptes=loud")).unwrap_err();
        assert_eq!(error.source_name, FilterSource::RustLog);
        assert!(
            error
                .to_string()
                .starts_with("RUST_LOG = \"info,panoptes=loud\""),
            "{error}"
        );
        let error = build("panoptes=loud", None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("[telemetry] log = \"panoptes=loud\""),
            "{error}"
        );
    }
}
