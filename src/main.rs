//! The `panoptes` command line.

use clap::{Parser, Subcommand};

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
    /// Serve simulated Kubernetes clusters (an embedded kube-apiserver) until Ctrl-C.
    Sim(panoptes_sim::cli::SimArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sim(args) => panoptes_sim::cli::run(args),
    }
}
