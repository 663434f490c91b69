//! The `panoptes` command line: `run` and `check` a `clusters.toml`, or serve simulated
//! clusters with `sim`. The logic lives in `panoptes_runtime::cli` and `panoptes_sim::cli`.

use clap::{Parser, Subcommand};
use panoptes_runtime::cli::{CliError, check, run};

#[derive(Parser)]
#[command(
    name = "panoptes",
    version,
    about = "A multi-cluster Kubernetes informer runtime built from actix actors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch every cluster and resource of a clusters.toml; print sync progress, then a
    /// summary every few seconds, until Ctrl-C or SIGTERM.
    Run(run::RunArgs),
    /// Validate a clusters.toml and check that every cluster answers and every watched
    /// resource can be listed.
    Check(check::CheckArgs),
    /// Serve simulated Kubernetes clusters (an embedded kube-apiserver) until Ctrl-C.
    Sim(panoptes_sim::cli::SimArgs),
}

fn main() {
    let outcome = match Cli::parse().command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Sim(args) => panoptes_sim::cli::run(args).map_err(CliError::Failed),
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
}
