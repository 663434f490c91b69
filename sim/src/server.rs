//! The HTTPS listener of one cluster: accepts TCP connections, terminates TLS (rustls, ring),
//! serves HTTP/1.1 or HTTP/2 on each (hyper-util auto, like the real server's ALPN h2 +
//! http/1.1), and hands every request to [`crate::router::handle`]. Stopping cancels the
//! accept loop and every connection, so watch streams end as when a real server goes away,
//! and releases the port so the cluster can listen on it again.
//!
//! A request from a client cut off by a partition fault ([`crate::faults::Faults::partition`])
//! never reaches the router: it waits, unanswered, until the partition is lifted (or the
//! server stops), and then its connection is closed without an answer.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::cluster_state::ClusterState;

/// A listening server; [`RunningServer::stop`] closes it and waits for the port to be released.
pub(crate) struct RunningServer {
    shutdown: CancellationToken,
    released: std::sync::mpsc::Receiver<()>,
}

impl RunningServer {
    /// Starts serving on `listener` (already bound, non-blocking) inside `runtime`.
    pub(crate) fn start(
        state: Arc<ClusterState>,
        listener: std::net::TcpListener,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<RunningServer> {
        let shutdown = CancellationToken::new();
        let (released_tx, released) = std::sync::mpsc::channel();
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        runtime.spawn(accept_loop(state, listener, shutdown.clone(), released_tx));
        Ok(RunningServer { shutdown, released })
    }

    /// Stops accepting, drops every connection, and waits (bounded) until the port is free.
    pub(crate) fn stop(self) {
        self.shutdown.cancel();
        let _ = self.released.recv_timeout(Duration::from_secs(5));
    }
}

/// The "answer" to a request that waited out a partition: none, the connection goes.
#[derive(Debug, thiserror::Error)]
#[error("the client was cut off by a partition fault")]
struct CutOff;

async fn accept_loop(
    state: Arc<ClusterState>,
    listener: TcpListener,
    shutdown: CancellationToken,
    released: std::sync::mpsc::Sender<()>,
) {
    let acceptor = TlsAcceptor::from(state.tls.server_config.clone());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _peer)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            state.clone(),
            acceptor.clone(),
            tcp,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let _ = released.send(());
}

async fn serve_connection(
    state: Arc<ClusterState>,
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    shutdown: CancellationToken,
) {
    let tls = tokio::select! {
        _ = shutdown.cancelled() => return,
        tls = acceptor.accept(tcp) => tls,
    };
    let Ok(tls) = tls else {
        tracing::debug!(cluster = %state.name, "TLS handshake failed");
        return;
    };
    let request_shutdown = shutdown.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let state = state.clone();
        let shutdown = request_shutdown.clone();
        async move {
            let agent = request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(crate::counters::NO_USER_AGENT)
                .to_string();
            if state.faults.is_partitioned(&agent) {
                tokio::select! {
                    _ = state.faults.until_reachable(&agent) => {}
                    _ = shutdown.cancelled() => {}
                }
                // An error from the service makes hyper drop the connection (HTTP/1.1) or
                // reset the stream (HTTP/2): no answer, as after a path that went down.
                return Err(CutOff);
            }
            Ok(crate::router::handle(state, request, shutdown).await)
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = connection => {}
    }
}
