//! A bounded HTTP/1.1 load generator: `connections` keep-alive connections each send GETs
//! back to back until `duration` passed or `max_requests` were sent in total; reports QPS and
//! latency percentiles. Non-200 answers count as errors, not as latencies. Bodies are read
//! frame by frame and only counted, as `wrk` does: the generator shares a core with the
//! service it measures, so copying each answer into one buffer would be charged to the
//! service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub qps: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} req/s, p50 {:.2} ms, p99 {:.2} ms ({} requests, {} errors, {:.1} MB)",
            self.qps,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests,
            self.errors,
            self.bytes as f64 / 1e6
        )
    }
}

/// GETs `path` on `addr` from `connections` connections for at most `duration` and
/// `max_requests` requests.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    max_requests: u64,
) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let deadline = started + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(connection);
        let (sent, path) = (sent.clone(), path.to_string());
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut bytes) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
                let request = http::Request::get(&path)
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())?;
                let begun = Instant::now();
                let response = sender.send_request(request).await?;
                let ok = response.status() == http::StatusCode::OK;
                let mut body = response.into_body();
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame?.data_ref() {
                        bytes += data.len() as u64;
                    }
                }
                if ok {
                    latencies.push(begun.elapsed());
                } else {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors, bytes))
        }));
    }
    let (mut latencies, mut errors, mut bytes) = (Vec::new(), 0, 0);
    for worker in workers {
        let (l, e, b) = worker.await.context("a load worker panicked")??;
        latencies.extend(l);
        errors += e;
        bytes += b;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(LoadReport {
        requests: latencies.len() as u64 + errors,
        errors,
        bytes,
        qps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    })
}
