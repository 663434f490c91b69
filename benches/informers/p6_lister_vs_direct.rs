//! P6: the seed's comparison. The `examples/pods_api` service (same router code) answers
//! `/pods` from a Panoptes lister and `/pods/direct` with a List to the API server (the
//! separate server process, N pods); the bounded load generator of that example measures
//! QPS and p50/p99 of each, first for the seed's request (every pod), then for a label
//! selector matching 1/20 of the pods. The informer keeps a compact cache, so `/pods`
//! concatenates stored bytes (`Lister::list_json`). The floor: a loopback server answering
//! a prebuilt buffer of the same size as `/pods`'s answer through the same HTTP stack, so
//! lister-path/floor says what the lister adds to writing the bytes.

use std::time::Duration;

use axum::routing::get;
use bytes::Bytes;
use panoptes_actors::CacheMode;

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
    let informer =
        PanoptesPods::sync_cached(client.clone(), "sim-1", CacheMode::Compact, |_| {}).await?;
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
        same_answers(addr, query).await?;
        let cached = measure(addr, &format!("/pods{query}"), sizes).await?;
        let direct = measure(addr, &format!("/pods/direct{query}"), sizes).await?;
        let floor = floor(addr, &format!("/pods{query}"), sizes).await?;
        lines.push(
            Line::new(
                "P6",
                format!("… lister path vs the floor (same bytes, prebuilt): {what}"),
            )
            .result(format!(
                "floor {:.1} req/s p50 {:.1} ms ({:.1} MB per answer); lister {:.1} req/s",
                floor.qps,
                ms(floor.p50),
                floor.bytes as f64 / floor.requests.max(1) as f64 / 1e6,
                cached.qps
            ))
            .against(
                format!("{:.2}× the floor's time", floor.qps / cached.qps),
                "≤ 2×",
                floor.qps <= 2.0 * cached.qps,
            ),
        );
        let ratio = cached.qps / direct.qps;
        lines.push(
            Line::new("P6", format!("pods API, lister vs direct List: {what}, {} connections", sizes.p6_connections))
                .result(format!(
                    "lister {:.1} req/s p50 {:.1} ms p99 {:.1} ms; direct {:.1} req/s p50 {:.1} ms p99 {:.1} ms",
                    cached.qps, ms(cached.p50), ms(cached.p99), direct.qps, ms(direct.p50), ms(direct.p99)
                ))
                .against(
                    format!("{ratio:.1}× QPS, p99 {:.2}×", cached.p99.as_secs_f64() / direct.p99.as_secs_f64()),
                    if query.is_empty() { "≥ 50× QPS, lower p99" } else { "≥ 20× QPS, lower p99" },
                    ratio >= if query.is_empty() { 50.0 } else { 20.0 } && cached.p99 < direct.p99,
                ),
        );
    }
    http.abort();
    Ok(())
}

/// One answer's body, fetched over a plain HTTP/1.1 connection.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<Bytes> {
    let target = path.to_string();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Bytes> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        use std::io::{Read, Write};
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            target
        );
        stream.write_all(request.as_bytes())?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow::anyhow!("no HTTP header end"))?;
        Ok(Bytes::from(answer.split_off(split + 4)))
    })
    .await?
}

/// The lister's and the direct answer to `query` are valid JSON naming the same pods (the
/// lister's is written piece by piece from stored bytes, so check it once before timing it).
async fn same_answers(addr: std::net::SocketAddr, query: &str) -> anyhow::Result<()> {
    let names = |body: &[u8], what: &str| -> anyhow::Result<std::collections::BTreeSet<String>> {
        let answer: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| anyhow::anyhow!("{what} is not JSON: {e}"))?;
        let pods = answer["result"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("{what} has no result array"))?;
        Ok(pods
            .iter()
            .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
            .collect())
    };
    let cached = names(&fetch(addr, &format!("/pods{query}")).await?, "/pods")?;
    let direct = names(
        &fetch(addr, &format!("/pods/direct{query}")).await?,
        "/pods/direct",
    )?;
    anyhow::ensure!(
        !cached.is_empty() && cached == direct,
        "/pods{query} names {} pods, /pods/direct{query} {}, not the same ones",
        cached.len(),
        direct.len()
    );
    Ok(())
}

/// The floor of `path`: one answer fetched, then served prebuilt by a loopback axum server
/// (the same HTTP stack) under the same load.
async fn floor(
    addr: std::net::SocketAddr,
    path: &str,
    sizes: &Sizes,
) -> anyhow::Result<LoadReport> {
    let body = fetch(addr, path).await?;
    let service = axum::Router::new().route(
        "/floor",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let floor_addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let report = measure(floor_addr, "/floor", sizes).await;
    server.abort();
    report
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
