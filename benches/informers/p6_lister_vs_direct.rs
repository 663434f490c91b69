//! P6: the seed's comparison. The `examples/pods_api` service (same router code) answers
//! `/pods` from a Panoptes lister and `/pods/direct` with a List to the API server (the
//! separate server process, N pods); the bounded load generator of that example measures
//! QPS and p50/p99 of each, first for the seed's request (every pod), then for a label
//! selector matching 1/20 of the pods.

use std::time::Duration;

use crate::Sizes;
use crate::contenders::{PanoptesPods, client};
use crate::pods_api_app::router;
use crate::pods_api_load::{self, LoadReport};
use crate::report::Line;
use crate::server_process::ServerProcess;

async fn measure(
    addr: std::net::SocketAddr,
    path: &str,
    sizes: &Sizes,
) -> anyhow::Result<LoadReport> {
    let report = pods_api_load::run(
        addr,
        path,
        sizes.p6_connections,
        Duration::from_secs_f64(sizes.p6_seconds),
        100_000,
    )
    .await?;
    eprintln!("P6 {path}: {report}");
    anyhow::ensure!(
        report.errors == 0,
        "{path} answered {} errors",
        report.errors
    );
    anyhow::ensure!(report.requests > 0, "{path} answered nothing in time");
    Ok(report)
}

pub async fn run(sizes: &Sizes, pin: bool, lines: &mut Vec<Line>) -> anyhow::Result<()> {
    let pods = sizes.p6_pods;
    let server = ServerProcess::spawn(1, pods, pin)?;
    let client = client(server.kubeconfig(), "sim-1").await?;
    let informer = PanoptesPods::sync(client.clone(), "sim-1", |_| {}).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = router(informer.informer.lister(), client);
    let http = tokio::spawn(async move { axum::serve(listener, service).await });

    for (what, query) in [
        (format!("all {pods} pods (the seed's /pods)"), ""),
        (
            format!("labelSelector app=app-7 ({} pods)", pods / 20),
            "?labelSelector=app%3Dapp-7",
        ),
    ] {
        let cached = measure(addr, &format!("/pods{query}"), sizes).await?;
        let direct = measure(addr, &format!("/pods/direct{query}"), sizes).await?;
        let ratio = cached.qps / direct.qps;
        lines.push(
            Line::new("P6", format!("pods API, lister vs direct List: {what}, {} connections", sizes.p6_connections))
                .result(format!(
                    "lister {:.1} req/s p50 {:.1} ms p99 {:.1} ms; direct {:.1} req/s p50 {:.1} ms p99 {:.1} ms",
                    cached.qps, ms(cached.p50), ms(cached.p99), direct.qps, ms(direct.p50), ms(direct.p99)
                ))
                .against(
                    format!("{ratio:.1}× QPS, p99 {:.2}×", cached.p99.as_secs_f64() / direct.p99.as_secs_f64()),
                    "≥ 100× QPS, lower p99",
                    ratio >= 100.0 && cached.p99 < direct.p99,
                ),
        );
    }
    http.abort();
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
