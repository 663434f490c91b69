//! Encoding a store [`Watch`] as the apiserver's watch response: HTTP 200, `Content-Type:
//! application/json`, chunked, one `{"type":..,"object":..}` line per event, flushed as
//! events come (events already queued are written together). Object bytes are spliced from
//! [`StoredObject::json`], never re-serialized. A BOOKMARK carries only kind, apiVersion and
//! metadata.resourceVersion (+ the `k8s.io/initial-events-end` annotation); an ERROR event
//! carries a Status and ends the stream; `timeoutSeconds` ends it cleanly at the deadline.
//! With kubectl's Table Accept every object becomes a one-row Table, and only the first
//! carries columnDefinitions (watch/watch-table-kubectl.jsonl). A metadata-only watch
//! (`as=PartialObjectMetadata`) sends every object and bookmark as a `PartialObjectMetadata`
//! and ERROR Statuses unchanged, as the real server's per-event transform does.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::counters::OpenWatchGuard;
use crate::faults::Faults;
use crate::response::{Body, with_content_type};
use crate::store::{ResourceType, StoredObject, Watch, WatchEvent};
use crate::table::{Column, IncludeObject};

/// Events written in one chunk at most, when many are queued.
const MAX_EVENTS_PER_CHUNK: usize = 256;

/// How the events of one watch are written.
pub struct WatchEncoding {
    /// The watched resource (for kinds and Table columns).
    pub resource: Arc<ResourceType>,
    /// Table columns and includeObject, when the client asked for Table.
    pub table: Option<(Vec<Column>, IncludeObject)>,
    /// Objects and bookmarks as meta.k8s.io/v1 `PartialObjectMetadata`.
    pub metadata_only: bool,
}

/// What feeds a watch response.
pub enum WatchSource {
    /// A store watch, ended by the store, the client, the deadline or the server stopping.
    Live {
        /// The store's watch.
        watch: Watch,
        /// `timeoutSeconds`: the stream ends after it.
        timeout: Option<Duration>,
    },
    /// The `stall_watches` fault: headers, then silence until the client leaves, the server
    /// stops or `ended` is cancelled (`drop_watches`).
    Stalled {
        /// Cancelled by `drop_watches`: the stalled response ends then.
        ended: CancellationToken,
    },
}

/// Who is watching, so a partition fault that cuts this client off silences its watch.
pub(crate) struct PartitionProbe {
    /// The cluster's faults.
    pub faults: Faults,
    /// The request's User-Agent.
    pub agent: String,
}

/// Starts streaming and returns the response whose body carries the events.
pub(crate) fn respond(
    source: WatchSource,
    encoding: WatchEncoding,
    guard: OpenWatchGuard,
    partition: PartitionProbe,
    shutdown: CancellationToken,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        // Counted as open for as long as the response streams, silent or not.
        let _guard = guard;
        let faults = partition.faults;
        let agent = partition.agent;
        tokio::select! {
            _ = pump(source, encoding, shutdown.clone(), tx.clone()) => {}
            _ = faults.until_partitioned(&agent) => {
                // A partition drops packets: the stream goes silent until the client
                // leaves, the server stops, or the path comes back (then it ends).
                tokio::select! {
                    _ = tx.closed() => {}
                    _ = shutdown.cancelled() => {}
                    _ = faults.until_reachable(&agent) => {}
                }
            }
        }
    });
    let frames = ReceiverStream::new(rx).map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    with_content_type(
        StatusCode::OK,
        "application/json",
        StreamBody::new(frames).boxed_unsync(),
    )
}

async fn pump(
    source: WatchSource,
    encoding: WatchEncoding,
    shutdown: CancellationToken,
    tx: mpsc::Sender<Bytes>,
) {
    let (mut watch, timeout) = match source {
        WatchSource::Stalled { ended } => {
            tokio::select! {
                _ = tx.closed() => {}
                _ = shutdown.cancelled() => {}
                _ = ended.cancelled() => {}
            }
            return;
        }
        WatchSource::Live { watch, timeout } => (watch, timeout),
    };
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
    tokio::pin!(deadline);
    let mut encoder = EventEncoder {
        encoding,
        columns_sent: false,
    };
    loop {
        let first = tokio::select! {
            event = watch.events.recv() => event,
            _ = tx.closed() => return,
            _ = shutdown.cancelled() => return,
            _ = &mut deadline => return,
        };
        let Some(first) = first else { return };
        let mut chunk = BytesMut::new();
        let mut ended = encoder.encode(&first, &mut chunk);
        let mut batched = 1;
        while !ended && batched < MAX_EVENTS_PER_CHUNK {
            match watch.events.try_recv() {
                Ok(event) => {
                    ended = encoder.encode(&event, &mut chunk);
                    batched += 1;
                }
                Err(_) => break,
            }
        }
        if tx.send(chunk.freeze()).await.is_err() || ended {
            return;
        }
    }
}

/// Turns events into wire lines, remembering whether Table columns went out already.
pub struct EventEncoder {
    encoding: WatchEncoding,
    columns_sent: bool,
}

impl EventEncoder {
    /// An encoder for one watch's events.
    pub fn new(encoding: WatchEncoding) -> EventEncoder {
        EventEncoder {
            encoding,
            columns_sent: false,
        }
    }

    /// Appends the event's line; returns true when the stream must end after it.
    pub fn encode(&mut self, event: &WatchEvent, out: &mut BytesMut) -> bool {
        let (kind, object) = match event {
            WatchEvent::Added(o) => ("ADDED", o),
            WatchEvent::Modified(o) => ("MODIFIED", o),
            WatchEvent::Deleted(o) => ("DELETED", o),
            WatchEvent::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                let mut metadata = json!({"resourceVersion": resource_version.to_string(), "creationTimestamp": null});
                if *initial_events_end {
                    metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                let rt = &self.encoding.resource;
                let object = if self.encoding.metadata_only {
                    json!({"kind": crate::partial_metadata::KIND, "apiVersion": crate::partial_metadata::API_VERSION, "metadata": metadata})
                } else {
                    json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata})
                };
                line(
                    out,
                    "BOOKMARK",
                    &serde_json::to_vec(&object).unwrap_or_default(),
                );
                return false;
            }
            WatchEvent::Error(status) => {
                line(
                    out,
                    "ERROR",
                    &serde_json::to_vec(&status.to_json()).unwrap_or_default(),
                );
                return true;
            }
        };
        match &self.encoding.table {
            None if self.encoding.metadata_only => {
                line(out, kind, &crate::partial_metadata::object(&object.json))
            }
            None => line(out, kind, &object.json),
            Some((columns, include)) => {
                let metadata = json!({"resourceVersion": object.resource_version.to_string()});
                let objects: [&StoredObject; 1] = [object];
                let table = crate::table::render(
                    columns,
                    &objects,
                    *include,
                    &metadata,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                line(out, kind, &table);
            }
        }
        false
    }
}

fn line(out: &mut BytesMut, kind: &str, object: &[u8]) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Status;

    fn configmaps() -> Arc<ResourceType> {
        crate::discovery::tests::resource("", "v1", "ConfigMap", "configmaps", true)
    }

    fn stored(name: &str, rv: u64) -> Arc<StoredObject> {
        let value = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "resourceVersion": rv.to_string(), "creationTimestamp": "2026-01-01T00:00:00Z"}});
        Arc::new(StoredObject::new(&value, rv))
    }

    fn encode(encoder: &mut EventEncoder, event: WatchEvent) -> (String, bool) {
        let mut out = BytesMut::new();
        let ended = encoder.encode(&event, &mut out);
        (String::from_utf8(out.to_vec()).expect("utf8"), ended)
    }

    #[test]
    fn events_splice_the_cached_json_and_bookmarks_carry_only_the_resource_version() {
        let mut encoder = EventEncoder::new(WatchEncoding {
            resource: configmaps(),
            table: None,
            metadata_only: false,
        });
        let object = stored("a", 7);
        let (line, ended) = encode(&mut encoder, WatchEvent::Added(object.clone()));
        assert_eq!(
            line,
            format!(
                "{{\"type\":\"ADDED\",\"object\":{}}}\n",
                String::from_utf8_lossy(&object.json)
            )
        );
        assert!(!ended);
        let (line, _) = encode(
            &mut encoder,
            WatchEvent::Bookmark {
                resource_version: 9,
                initial_events_end: true,
            },
        );
        let event: serde_json::Value = serde_json::from_str(&line).expect("json line");
        assert_eq!(event["type"], "BOOKMARK");
        assert_eq!(
            event["object"],
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "9", "creationTimestamp": null, "annotations": {"k8s.io/initial-events-end": "true"}}})
        );
    }

    #[test]
    fn error_events_end_the_stream() {
        let mut encoder = EventEncoder::new(WatchEncoding {
            resource: configmaps(),
            table: None,
            metadata_only: false,
        });
        let expired = Status {
            code: 410,
            reason: "Expired".into(),
            message: "too old resource version: 5 (545)".into(),
            details: None,
            metadata: None,
        };
        let (line, ended) = encode(&mut encoder, WatchEvent::Error(expired));
        assert!(ended);
        let event: serde_json::Value = serde_json::from_str(&line).expect("json line");
        assert_eq!(
            (event["type"].as_str(), event["object"]["code"].as_u64()),
            (Some("ERROR"), Some(410))
        );
    }

    #[test]
    fn table_watches_send_columns_only_once() {
        let rt = configmaps();
        let columns = crate::table::columns_for(&rt, None);
        let mut encoder = EventEncoder::new(WatchEncoding {
            resource: rt,
            table: Some((columns, IncludeObject::Metadata)),
            metadata_only: false,
        });
        let (first, _) = encode(&mut encoder, WatchEvent::Added(stored("a", 7)));
        let (second, _) = encode(&mut encoder, WatchEvent::Deleted(stored("a", 8)));
        let first: serde_json::Value = serde_json::from_str(&first).expect("json");
        let second: serde_json::Value = serde_json::from_str(&second).expect("json");
        assert_eq!(first["object"]["columnDefinitions"][1]["name"], "Data");
        assert_eq!(
            second["object"]["columnDefinitions"],
            serde_json::Value::Null
        );
        assert_eq!(second["object"]["metadata"]["resourceVersion"], "8");
        assert_eq!(
            second["object"]["rows"][0]["object"]["kind"],
            "PartialObjectMetadata"
        );
    }
}
