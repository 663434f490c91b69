//! `panoptes config from-kubeconfig`: writes a `clusters.toml` with one `[[clusters]]` entry
//! per context of a kubeconfig — what `scripts/kind-up.sh` runs after creating its kind
//! clusters, and what a test runs on a kubeconfig written by `sim`, without docker.
//!
//! # Contract
//!
//! - One entry per chosen context (`--contexts a,b`; all of the file's contexts, in file
//!   order, when left out), each `kubeconfig = <the file, absolute>` + `context = <name>`, so
//!   the result works from any directory.
//! - Cluster names come from context names made into DNS labels (`kind-panoptes-1` stays,
//!   `arn:aws:eks:…/prod` becomes `arn-aws-eks-…-prod`); two contexts that would get the
//!   same name, a context the file lacks, or a file without contexts is an error naming it.
//! - `[[watch]]` entries for the given resources (default `v1/pods` and
//!   `apps/v1/deployments`) on every cluster; `[telemetry] log = "warn"`.
//! - The text is checked by the same loader `run` and `check` use before it is written, so
//!   a file this command writes always loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

use super::CliError;
use crate::config::PanoptesConfig;

/// Arguments of `panoptes config from-kubeconfig`.
#[derive(Debug, Clone, clap::Args)]
pub struct FromKubeconfigArgs {
    /// The kubeconfig to read.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: PathBuf,
    /// Contexts to turn into clusters, comma-separated (default: every context of the file).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub contexts: Vec<String>,
    /// Resources to watch on every cluster, `[group/]version/plural` (repeatable).
    #[arg(long = "watch", value_name = "RESOURCE", default_values_t = default_watches())]
    pub watches: Vec<String>,
    /// Where to write the file (default: stdout).
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

fn default_watches() -> Vec<String> {
    vec!["v1/pods".into(), "apps/v1/deployments".into()]
}

/// Why no configuration could be generated.
#[derive(Debug, thiserror::Error)]
pub enum FromKubeconfigError {
    /// The kubeconfig could not be read or parsed.
    #[error("cannot read kubeconfig {}: {message}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong, with its source chain.
        message: String,
    },
    /// The kubeconfig has no contexts to turn into clusters.
    #[error("kubeconfig {} has no contexts", path.display())]
    NoContexts {
        /// The file.
        path: PathBuf,
    },
    /// A context named with `--contexts` is not in the file.
    #[error("kubeconfig {} has no context \"{context}\" (it has: {available})", path.display())]
    UnknownContext {
        /// The file.
        path: PathBuf,
        /// The missing context.
        context: String,
        /// The contexts it has, comma-separated.
        available: String,
    },
    /// A context name has no letter or digit to make a cluster name from.
    #[error("context \"{context}\" cannot be made into a cluster name (no letter or digit)")]
    Unnameable {
        /// The context.
        context: String,
    },
    /// Two contexts would be given the same cluster name.
    #[error(
        "contexts \"{first}\" and \"{second}\" would both be named \"{name}\"; pick one with --contexts"
    )]
    NameClash {
        /// The earlier context.
        first: String,
        /// The later context.
        second: String,
        /// The cluster name both map to.
        name: String,
    },
    /// The generated text did not load (a bad `--watch`, most likely).
    #[error("the generated configuration does not load:\n{0}")]
    Invalid(crate::config::ConfigError),
    /// The output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the command: renders, checks, and writes (or prints) the configuration.
pub fn from_kubeconfig(args: FromKubeconfigArgs) -> Result<(), CliError> {
    let text = render_file(&args.kubeconfig, &args.contexts, &args.watches)
        .map_err(|e| CliError::Failed(e.into()))?;
    match &args.output {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(path, &text).map_err(|source| {
                CliError::Failed(
                    FromKubeconfigError::Write {
                        path: path.clone(),
                        source,
                    }
                    .into(),
                )
            })?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The `clusters.toml` text for `contexts` (all when empty) of the kubeconfig at `path`,
/// checked by the configuration loader.
pub fn render_file(
    path: &Path,
    contexts: &[String],
    watches: &[String],
) -> Result<String, FromKubeconfigError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let kubeconfig =
        Kubeconfig::read_from(&absolute).map_err(|e| FromKubeconfigError::Unreadable {
            path: absolute.clone(),
            message: panoptes_actors::error_chain::error_chain(&e),
        })?;
    let text = render(&absolute, &kubeconfig, contexts, watches)?;
    PanoptesConfig::parse(&text, Path::new("clusters.toml (generated)"), [])
        .map_err(FromKubeconfigError::Invalid)?;
    Ok(text)
}

/// The `clusters.toml` text for `contexts` (all when empty) of `kubeconfig`, read from
/// `path`. Not checked by the loader: [`render_file`] does that.
pub fn render(
    path: &Path,
    kubeconfig: &Kubeconfig,
    contexts: &[String],
    watches: &[String],
) -> Result<String, FromKubeconfigError> {
    let available: Vec<&str> = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if available.is_empty() {
        return Err(FromKubeconfigError::NoContexts { path: path.into() });
    }
    let chosen: Vec<&str> = if contexts.is_empty() {
        available.clone()
    } else {
        contexts.iter().map(|c| c.trim()).collect()
    };
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = String::from(
        "# Generated by `panoptes config from-kubeconfig`: one cluster per kubeconfig context.\n\
         # Check it with `panoptes check --config <this file>`.\n\n\
         [telemetry]\nlog = \"warn\"\n",
    );
    for context in chosen {
        if !available.contains(&context) {
            return Err(FromKubeconfigError::UnknownContext {
                path: path.into(),
                context: context.into(),
                available: available.join(", "),
            });
        }
        let name = cluster_name(context).ok_or_else(|| FromKubeconfigError::Unnameable {
            context: context.into(),
        })?;
        if let Some(first) = names.insert(name.clone(), context) {
            return Err(FromKubeconfigError::NameClash {
                first: first.into(),
                second: context.into(),
                name,
            });
        }
        out.push_str(&format!(
            "\n[[clusters]]\nname = {}\nkubeconfig = {}\ncontext = {}\n",
            quote(&name),
            quote(&path.display().to_string()),
            quote(context)
        ));
    }
    for resource in watches {
        out.push_str(&format!(
            "\n[[watch]]\nresource = {}\nclusters = \"*\"\n",
            quote(resource)
        ));
    }
    Ok(out)
}

/// A context name as a cluster name: a DNS label (lowercase letters, digits and '-', at most
/// 63, starting and ending with a letter or digit). `None` when nothing is left.
pub fn cluster_name(context: &str) -> Option<String> {
    let mut name = String::new();
    for c in context.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    (!name.is_empty()).then_some(name)
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml::Value::String(text.into()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_make_dns_labels_of_context_names() {
        assert_eq!(
            cluster_name("kind-panoptes-1").as_deref(),
            Some("kind-panoptes-1")
        );
        assert_eq!(
            cluster_name("arn:aws:eks:eu-west-1:1234:cluster/Prod").as_deref(),
            Some("arn-aws-eks-eu-west-1-1234-cluster-prod")
        );
        assert_eq!(cluster_name("__--").as_deref(), None);
        assert_eq!(cluster_name(&"a".repeat(80)).map(|n| n.len()), Some(63));
    }

    #[test]
    fn should_refuse_unknown_contexts_and_clashing_names() {
        let kubeconfig = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts:\n\
             - name: Prod\n  context: {cluster: a, user: a}\n\
             - name: prod\n  context: {cluster: a, user: a}\n",
        )
        .unwrap();
        let path = Path::new("/tmp/kc");
        let watches = default_watches();
        let unknown = render(path, &kubeconfig, &["dev".into()], &watches).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("no context \"dev\" (it has: Prod, prod)"),
            "{unknown}"
        );
        let clash = render(path, &kubeconfig, &[], &watches).unwrap_err();
        assert!(
            matches!(clash, FromKubeconfigError::NameClash { .. }),
            "{clash}"
        );
        let one = render(path, &kubeconfig, &["prod".into()], &watches).unwrap();
        assert!(
            one.contains("name = \"prod\"\nkubeconfig = \"/tmp/kc\"\ncontext = \"prod\""),
            "{one}"
        );
        assert_eq!(one.matches("[[watch]]").count(), 2);
    }
}
