//! The `panoptes` command line: `run` and `check` a `clusters.toml`, write one from a
//! kubeconfig with `config from-kubeconfig`, or serve simulated clusters with `sim`. The logic
//! lives in `panoptes_runtime::cli` and `panoptes_sim::cli`.

use clap::{Parser, Subcommand};
use panoptes_runtime::cli::{CliError, check, from_kubeconfig, run};

#[derive(Parser)]
#[command(
    name = "panoptes",
    version,
    about = "A multi-cluster Kubernetes informer runtime built from actix actors",
    after_help = "Examples:\n  \
        panoptes run                                  # the shipped clusters.toml: 3 embedded clusters\n  \
        panoptes check --config clusters.kind.toml\n  \
        RUST_LOG=info,panoptes_actors=debug panoptes run\n\n\
        Logs go to stderr, filtered by RUST_LOG when set, else by [telemetry] log."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch every cluster and resource of a clusters.toml; print sync progress, then a
    /// summary every few seconds, until Ctrl-C or SIGTERM.
    #[command(after_help = "Examples:\n  \
        panoptes run                                   # ./clusters.toml, until Ctrl-C\n  \
        panoptes run --config clusters.kind.toml --summary-secs 10\n  \
        panoptes run --exit-after-sync --sync-timeout-secs 60   # for scripts and CI\n  \
        RUST_LOG=debug panoptes run                    # RUST_LOG replaces [telemetry] log\n\n\
        SIGHUP, or saving the file, reloads its [[clusters]].")]
    Run(run::RunArgs),
    /// Validate a clusters.toml and check that every cluster answers and every watched
    /// resource can be listed.
    #[command(after_help = "Examples:\n  \
        panoptes check\n  \
        panoptes check --config clusters.kind.toml --timeout-secs 5\n\n\
        Exit status: 0 all passed, 1 a check failed, 2 the file does not load.")]
    Check(check::CheckArgs),
    /// Write a configuration (see `panoptes config from-kubeconfig --help`).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve simulated Kubernetes clusters (an embedded kube-apiserver) until Ctrl-C.
    #[command(after_help = "Examples:\n  \
        panoptes sim --clusters 2 --kubeconfig sim.kubeconfig --pods 100 --churn-rate 5\n  \
        kubectl --kubeconfig sim.kubeconfig --context sim-2 get pods\n  \
        panoptes config from-kubeconfig --kubeconfig sim.kubeconfig -o clusters.sim.toml")]
    Sim(panoptes_sim::cli::SimArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write a clusters.toml with one `[[clusters]]` entry per kubeconfig context (what
    /// scripts/kind-up.sh does for its kind clusters).
    #[command(after_help = "Examples:\n  \
        panoptes config from-kubeconfig --kubeconfig ~/.kube/config --contexts kind-panoptes-1,kind-panoptes-2 -o clusters.kind.toml\n  \
        panoptes config from-kubeconfig --kubeconfig sim.kubeconfig --watch v1/pods --watch v1/configmaps\n\n\
        Without --contexts every context of the file becomes a cluster; without -o the file goes to stdout.")]
    FromKubeconfig(from_kubeconfig::FromKubeconfigArgs),
}

fn main() {
    let outcome = match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Config(ConfigCommand::FromKubeconfig(args)) => {
            from_kubeconfig::from_kubeconfig(args)
        }
        Command::Sim(args) => panoptes_sim::cli::run(args).map_err(CliError::Failed),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}
