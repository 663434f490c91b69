//! A tiny HTTP/1.1 API server on 127.0.0.1 for bytes `sim` will not produce: duplicate keys,
//! objects of the wrong kind, invalid watch frames, bodies cut off mid-chunk. Each request is
//! answered by the test's script; the server stops when the test's runtime ends.

// Shared by test crates that each use part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How one request is answered.
pub enum Reply {
    /// A complete JSON response with this status.
    Json(u16, String),
    /// `200` with `Transfer-Encoding: chunked`: these chunks, then `end`.
    Chunked(Vec<Vec<u8>>, End),
}

impl Reply {
    /// A chunked reply of these chunks (text, or bytes that need not be UTF-8).
    pub fn chunked(chunks: Vec<impl Into<Vec<u8>>>, end: End) -> Self {
        Reply::Chunked(chunks.into_iter().map(Into::into).collect(), end)
    }
}

/// What a chunked reply does after its chunks.
pub enum End {
    /// The terminating zero-length chunk: a complete body.
    Complete,
    /// Close the connection mid-body (a truncated chunked body).
    Cut,
    /// Keep the connection open and silent for this long (a stalled stream), then close it.
    Hang(Duration),
}

type Script = dyn Fn(&str) -> Reply + Send + Sync;

/// A running server; requests made so far are in [`RawServer::requests`].
pub struct RawServer {
    pub url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    /// Serves on a free port; `script` maps each request's path and query to its reply.
    pub async fn start(script: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("has an address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, script.clone(), seen.clone()));
            }
        });
        Self { url, requests }
    }

    /// The path and query of every request so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().clone()
    }

    /// A `kube::Client` for this server (plain HTTP, no auth).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("a valid URL"));
        kube::Client::try_from(config).expect("client builds")
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Script>, requests: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut socket, &mut buffer).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end);
        let Some(target) = head.split_whitespace().nth(1).map(str::to_owned) else {
            return;
        };
        requests.lock().push(target.clone());
        let keep_open = match script(&target) {
            Reply::Json(code, body) => {
                let head = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                socket.write_all(head.as_bytes()).await.is_ok()
                    && socket.write_all(body.as_bytes()).await.is_ok()
            }
            Reply::Chunked(chunks, end) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for chunk in chunks {
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.extend_from_slice(&chunk);
                    framed.extend_from_slice(b"\r\n");
                    if socket.write_all(&framed).await.is_err() {
                        return;
                    }
                }
                match end {
                    End::Complete => socket.write_all(b"0\r\n\r\n").await.is_ok(),
                    End::Cut => false,
                    End::Hang(how_long) => {
                        let _ = socket.flush().await;
                        tokio::time::sleep(how_long).await;
                        false
                    }
                }
            }
        };
        if !keep_open {
            return;
        }
    }
}

/// Reads until the end of a request head (requests from a reflector have no body); returns
/// the head's length, or `None` when the client closed the connection.
async fn read_head(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
