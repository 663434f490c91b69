//! The two requests a reflector makes — a list page and a watch — and how their failures are
//! classified: client-go's `ListWatch` (`tools/cache/listwatch.go`) plus the error tests of
//! `reflector.go` (`isExpiredError`, `IsForbidden`, `IsTooManyRequests`).
//!
//! Contract:
//! - URLs are built by `kube::core::Request` exactly as `Api::list`/`Api::watch` build them
//!   (so `resourceVersion=0` with a `limit` is dropped, as kube-core does), and sent through the
//!   caller's `kube::Client` (auth, TLS and middleware unchanged).
//! - A metadata-only lister ([`ListWatcher::metadata_only`]) asks as `Api::list_metadata` /
//!   `Api::watch_metadata` do (client-go's metadata client): the same URLs with
//!   `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` on list pages and
//!   `…;as=PartialObjectMetadata;…` on watches, whose events (bookmarks too) then carry only
//!   `kind: PartialObjectMetadata` objects.
//! - Responses are read as bytes, not text, and decoded once; objects come out behind `Arc`.
//! - A failed response keeps what the server said: HTTP code, `Status` reason and message, and
//!   the delay it asked for (`Retry-After` header or `details.retryAfterSeconds`).
//! - A watch is read chunk by chunk; every complete event already received is handed out
//!   together, so a burst becomes one batch and a lone event is never held back.
//! - Bytes are untrusted ([`crate::quarantine`]): a page or event that fails to decode whole
//!   is decoded object by object, and an object the cache's type cannot hold is quarantined,
//!   not fatal; a watch line longer than the configured maximum is skipped without being
//!   buffered; a body cut off mid-chunk is reported as [`BadInput::TruncatedBody`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body_util::BodyExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::core::Status;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::ids::ResourceVersion;
use crate::managed_fields::{self, Document, ManagedFields};
use crate::quarantine::{self, BadInput, Quarantined};

/// How the reflector should react to a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 410 Gone / `Expired` / "too old resource version": the requested history is compacted
    /// away, so only a fresh list can resynchronise.
    Expired,
    /// 403: RBAC forbids this resource; retrying fast will not help.
    Forbidden,
    /// 429: the server is shedding load and may say how long to wait.
    TooManyRequests,
    /// 400 / 422: the server rejects the request itself (for a `sendInitialEvents` watch: the
    /// server does not offer streaming lists).
    Rejected,
    /// Anything else (connection errors, 5xx, undecodable bodies): retry with backoff.
    Transient,
}

/// Which request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A list (or one of its pages).
    List,
    /// A watch, opening or streaming.
    Watch,
}

/// A failed list or watch, with what the server said. Every failure is retryable; the
/// [`FailureKind`] says how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct Failure {
    /// Which request failed.
    pub request: Request,
    /// How to retry.
    pub kind: FailureKind,
    /// HTTP (or watch `Status`) code; `None` when no response came back.
    pub code: Option<u16>,
    /// The server's message, or the transport error's.
    pub message: String,
    /// How long the server asked us to wait.
    pub retry_after: Option<Duration>,
    /// Set when the failure is bad bytes from the server (counted and logged as such).
    pub bad_input: Option<BadInput>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = match self.request {
            Request::List => "list",
            Request::Watch => "watch",
        };
        match self.code {
            Some(code) => write!(f, "{request} failed with {code}: {}", self.message),
            None => write!(f, "{request} failed: {}", self.message),
        }
    }
}

impl Failure {
    fn transient(request: Request, message: impl Into<String>) -> Self {
        Self {
            request,
            kind: FailureKind::Transient,
            code: None,
            message: message.into(),
            retry_after: None,
            bad_input: None,
        }
    }

    pub(crate) fn bad_input(
        request: Request,
        reason: BadInput,
        message: impl Into<String>,
    ) -> Self {
        Self {
            bad_input: Some(reason),
            ..Self::transient(request, message)
        }
    }

    /// A failure from a `metav1.Status` (an error response body or a watch ERROR event).
    pub fn from_status(request: Request, status: &Status, retry_after: Option<Duration>) -> Self {
        let from_details = status
            .details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(u64::from(s)));
        Self {
            request,
            kind: classify(status.code, &status.reason, &status.message),
            code: Some(status.code),
            message: if status.message.is_empty() {
                status.reason.clone()
            } else {
                status.message.clone()
            },
            retry_after: retry_after.or(from_details),
            bad_input: None,
        }
    }
}

/// client-go's `isExpiredError` / `isTooLargeResourceVersionError`, `IsForbidden`,
/// `IsTooManyRequests`, and `IsInvalid`/`IsBadRequest` for refused streaming lists.
pub fn classify(code: u16, reason: &str, message: &str) -> FailureKind {
    let lower = message.to_ascii_lowercase();
    if code == 410
        || reason == "Expired"
        || reason == "Gone"
        || lower.contains("too old resource version")
        || lower.contains("too large resource version")
    {
        FailureKind::Expired
    } else if code == 403 {
        FailureKind::Forbidden
    } else if code == 429 {
        FailureKind::TooManyRequests
    } else if code == 400 || code == 422 {
        FailureKind::Rejected
    } else {
        FailureKind::Transient
    }
}

/// `Retry-After` as delay-seconds (the only form the API server sends).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Which state a list (or a streaming list's initial events) may be served from: the
/// `resourceVersion` (and implied `resourceVersionMatch`) of the request, as a type rather
/// than client-go's `""` / `"0"` / `"123"` strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFrom {
    /// Any state, however old (`resourceVersion=0`): the API server's watch cache answers.
    /// kube drops `0` from a request with a `limit`, making it [`ListFrom::Consistent`].
    Any,
    /// The current state (no `resourceVersion`): a quorum read from etcd.
    Consistent,
    /// A state at least as new as this version (`resourceVersion=RV`, `NotOlderThan`).
    NotOlderThan(ResourceVersion),
}

impl ListFrom {
    /// The `resourceVersion` query value (`""` means none is sent).
    pub fn query_value(&self) -> &str {
        match self {
            ListFrom::Any => "0",
            ListFrom::Consistent => "",
            ListFrom::NotOlderThan(version) => version.as_str(),
        }
    }
}

/// One decoded list page.
#[derive(Debug)]
pub struct Page<K> {
    /// The decoded objects (bad ones were quarantined, see [`crate::quarantine`]).
    pub items: Vec<Arc<K>>,
    /// The list's resourceVersion (`None` when the server sent none).
    pub resource_version: Option<ResourceVersion>,
    /// The token for the next page; `None` on the last page.
    pub continue_token: Option<String>,
    /// Items the cache's type could not hold, in page order.
    pub quarantined: Vec<Quarantined>,
}

#[derive(Deserialize)]
struct WirePage<K> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default = "Option::default")]
    items: Option<Vec<Arc<K>>>,
}

/// Decodes a list page's body (CPU-bound: run it off the I/O thread for big pages).
pub fn decode_page<K: DeserializeOwned>(body: &[u8]) -> Result<Page<K>, Failure> {
    decode_page_with(body, ManagedFields::Keep)
}

/// [`decode_page`], skipping every item's `metadata.managedFields` when `managed_fields` says
/// [`ManagedFields::Drop`].
pub fn decode_page_with<K: DeserializeOwned>(
    body: &[u8],
    managed_fields: ManagedFields,
) -> Result<Page<K>, Failure> {
    let text = json_text(body, Request::List)?;
    let decoded = managed_fields::from_str::<WirePage<K>>(text, managed_fields, Document::ListPage);
    let (metadata, items, quarantined) = match decoded {
        Ok(page) => (page.metadata, page.items.unwrap_or_default(), Vec::new()),
        Err(whole) => {
            let (metadata, sorted) = decode_page_by_item(text, managed_fields, &whole)?;
            (metadata, sorted.objects, sorted.quarantined)
        }
    };
    Ok(Page {
        items,
        resource_version: ResourceVersion::from_server(metadata.resource_version.as_deref()),
        continue_token: metadata.continue_.filter(|c| !c.is_empty()),
        quarantined,
    })
}

/// The slow path of [`decode_page_with`]: the page read as a map (the last of duplicate keys
/// wins), then each item on its own.
fn decode_page_by_item<K: DeserializeOwned>(
    text: &str,
    managed_fields: ManagedFields,
    whole: &serde_json::Error,
) -> Result<(ListMeta, quarantine::Sorted<K>), Failure> {
    let invalid = |what: &str| {
        Failure::bad_input(
            Request::List,
            BadInput::InvalidFrame,
            format!("undecodable list page ({what}): {whole}"),
        )
    };
    let members = quarantine::members(text).ok_or_else(|| invalid("not a JSON object"))?;
    let metadata = match members.get("metadata") {
        Some(raw) => serde_json::from_str::<ListMeta>(raw.get())
            .map_err(|_| invalid("its metadata is not a ListMeta"))?,
        None => ListMeta::default(),
    };
    let raw_items = match members.get("items") {
        Some(raw) => serde_json::from_str::<Option<Vec<&serde_json::value::RawValue>>>(raw.get())
            .map_err(|_| invalid("its items are not an array"))?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let sorted = quarantine::sort_objects::<K>(&raw_items, managed_fields);
    Ok((metadata, sorted))
}

/// A body from the server as JSON text.
///
/// JSON exchanged between systems must be UTF-8 (RFC 8259 §8.1) and kube-apiserver writes
/// nothing else (Go's encoder replaces invalid sequences), so bytes that are not UTF-8 are
/// refused whole, wherever the bad byte sits. Checked per string instead (what
/// `serde_json::from_slice` does), a bad byte inside a value the type ignores would pass
/// unseen, and the same page would decode or fail depending on whether its managedFields
/// were skipped. Checking once up front also lets `serde_json::from_str` skip its own
/// per-string check, a measurable part of every decode (see [`crate::compact`]).
fn json_text(body: &[u8], request: Request) -> Result<&str, Failure> {
    std::str::from_utf8(body).map_err(|e| {
        let what = match request {
            Request::List => "list page",
            Request::Watch => "watch event",
        };
        let message = format!(
            "the {what} is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        );
        Failure::bad_input(request, BadInput::InvalidFrame, message)
    })
}

/// The `continue` token of an undecoded page, if the server wrote the list metadata before the
/// items (as kube-apiserver does). Lets the next page be fetched while this one decodes; a
/// wrong guess costs one wasted request, because the caller checks it against the decode.
pub fn peek_continue(body: &[u8]) -> Option<String> {
    const ITEMS: &[u8] = b"\"items\"";
    const CONTINUE: &[u8] = b"\"continue\":\"";
    let head = &body[..find(body, ITEMS)?];
    let start = find(head, CONTINUE)? + CONTINUE.len();
    let len = head[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')?;
    if head[start + len] != b'"' || len == 0 {
        return None;
    }
    std::str::from_utf8(&head[start..start + len])
        .ok()
        .map(str::to_owned)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Lists and watches one resource URL through a `kube::Client`.
#[derive(Clone)]
pub struct ListWatcher {
    client: kube::Client,
    request: kube::core::Request,
    label_selector: Option<String>,
    field_selector: Option<String>,
    /// Ask for `PartialObjectMetadata(List)` instead of whole objects.
    metadata_only: bool,
}

impl fmt::Debug for ListWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListWatcher")
            .field("url", &self.request.url_path)
            .field("metadata_only", &self.metadata_only)
            .finish_non_exhaustive()
    }
}

impl ListWatcher {
    /// Lists and watches what `api` addresses (its namespace, or all), with these selectors.
    pub fn new<K: kube::Resource>(
        api: kube::Api<K>,
        label_selector: Option<String>,
        field_selector: Option<String>,
    ) -> Self {
        Self {
            request: kube::core::Request::new(api.resource_url().to_owned()),
            client: api.into_client(),
            label_selector,
            field_selector,
            metadata_only: false,
        }
    }

    /// Lists and watches only the objects' metadata (`PartialObjectMetadata`) when `on`.
    pub fn metadata_only(mut self, on: bool) -> Self {
        self.metadata_only = on;
        self
    }

    /// GETs one list page and returns its undecoded body. A continued page sends only its
    /// token: the server takes the version from it and refuses both (client-go's pager
    /// clears the version the same way).
    pub async fn fetch_page(
        &self,
        from: &ListFrom,
        continue_token: Option<&str>,
        limit: u32,
    ) -> Result<Bytes, Failure> {
        let resource_version = match continue_token {
            Some(_) => None,
            None => Some(from.query_value().to_owned()).filter(|rv| !rv.is_empty()),
        };
        let params = ListParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: Some(limit),
            continue_token: continue_token.map(str::to_owned),
            resource_version,
            ..ListParams::default()
        };
        let request = if self.metadata_only {
            self.request.list_metadata(&params)
        } else {
            self.request.list(&params)
        };
        let request = request.map_err(|e| {
            Failure::transient(Request::List, format!("cannot build list request: {e}"))
        })?;
        let response = self.send(Request::List, request).await?;
        let body = response.into_body().collect().await.map_err(|e| {
            let message = format!("list body interrupted: {e}");
            Failure::bad_input(Request::List, BadInput::TruncatedBody, message)
        })?;
        Ok(body.to_bytes())
    }

    /// Opens a watch from `resource_version` with bookmarks on. The stream ends by itself
    /// after `limits.silence` without a byte, and skips lines longer than `limits.max_event_bytes`.
    pub async fn open_watch<K: DeserializeOwned>(
        &self,
        resource_version: &str,
        send_initial_events: bool,
        timeout: Duration,
        limits: WatchLimits,
    ) -> Result<WatchStream<K>, Failure> {
        let timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        let params = WatchParams {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            timeout: Some(timeout_secs),
            bookmarks: true,
            send_initial_events,
        };
        let request = if self.metadata_only {
            self.request.watch_metadata(&params, resource_version)
        } else {
            self.request.watch(&params, resource_version)
        };
        let mut request = request.map_err(|e| {
            Failure::transient(Request::Watch, format!("cannot build watch request: {e}"))
        })?;
        // Same reason as kube-client's `request_events`: gzip of watch streams is per event.
        request.headers_mut().insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
        let response = self.send(Request::Watch, request).await?;
        Ok(WatchStream {
            body: response.into_body(),
            lines: LineSplitter::new(limits.max_event_bytes),
            // The server ends the watch at `timeoutSeconds`; silence well past that means the
            // connection is dead without a FIN (kube-runtime adds the same kind of margin).
            silence: limits.silence.min(timeout + WATCH_IDLE_MARGIN),
            _k: PhantomData,
        })
    }

    async fn send(
        &self,
        request: Request,
        http_request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<kube::client::Body>, Failure> {
        let response = self
            .client
            .send(http_request.map(kube::client::Body::from))
            .await
            .map_err(|e| Failure::transient(request, crate::error_chain::error_chain(&e)))?;
        let code = response.status();
        if code.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let status = serde_json::from_slice::<Status>(&body).unwrap_or_else(|_| {
            Status::failure(String::from_utf8_lossy(&body).trim(), "").with_code(code.as_u16())
        });
        let status = if status.code == 0 {
            status.with_code(code.as_u16())
        } else {
            status
        };
        Err(Failure::from_status(request, &status, retry_after))
    }
}

/// Margin over `timeoutSeconds` before a silent watch counts as dead.
pub const WATCH_IDLE_MARGIN: Duration = Duration::from_secs(30);

/// Upper bound of bytes drained into one batch, so a firehose still yields regularly.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// The bounds a watch stream keeps against a misbehaving server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// The stream ends (as stalled) after this long without a byte.
    pub silence: Duration,
    /// A line (one event) longer than this is skipped without being buffered.
    pub max_event_bytes: usize,
}

/// What reading a watch produced.
#[derive(Debug)]
pub enum WatchItem<K> {
    /// A decoded event.
    Event(WatchEvent<K>),
    /// An event whose object the cache's type cannot hold; the stream goes on.
    Quarantined(Quarantined),
    /// Bytes skipped (an oversized line, or a truncated last line before [`WatchItem::Ended`]).
    Skipped(BadInput),
    /// The stream ended: the server's timeout, a dropped connection, or idle silence
    /// (`stalled`). Resume.
    Ended {
        /// No bytes came for the idle timeout (the server may have silently dropped the watch).
        stalled: bool,
    },
    /// The watch failed (an ERROR event, or a transport error).
    Failed(Failure),
}

/// An open watch: newline-delimited `WatchEvent` JSON.
pub struct WatchStream<K> {
    body: kube::client::Body,
    lines: LineSplitter,
    silence: Duration,
    _k: PhantomData<fn() -> K>,
}

/// The complete lines a watch delivered so far, undecoded (so a caller can decode a big
/// burst, like a streaming list's initial events, off the I/O thread).
#[derive(Debug, Default)]
pub struct RawBatch {
    /// One JSON document per line, without the newline.
    pub lines: Vec<BytesMut>,
    /// What was skipped while splitting these lines.
    pub skipped: Vec<BadInput>,
    /// The stream finished after these lines (server timeout, EOF, broken or silent connection).
    pub ended: bool,
    /// It finished because nothing arrived for the silence limit.
    pub stalled: bool,
}

/// Splits a watch body into lines (one event each) as chunks arrive, never buffering more
/// than `max_line` bytes of one line: a longer line is dropped up to its newline and reported
/// once as [`BadInput::Oversized`]. Blank lines are dropped.
#[derive(Debug)]
pub struct LineSplitter {
    /// Bytes after the last newline seen (the start of an incomplete event).
    buffer: BytesMut,
    /// How much of `buffer` is known to hold no newline (an event spans many chunks).
    scanned: usize,
    max_line: usize,
    /// Inside an oversized line: everything up to the next newline is dropped.
    discarding: bool,
    /// The oversized line being dropped held more than whitespace (a body ending inside it
    /// was cut short; one ending in blanks was not).
    discarded_text: bool,
}

impl LineSplitter {
    /// A splitter that drops (and reports) lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            scanned: 0,
            max_line,
            discarding: false,
            discarded_text: false,
        }
    }

    /// Takes one chunk; moves the lines it completes to `lines`.
    pub fn push(&mut self, data: &[u8], lines: &mut Vec<BytesMut>, skipped: &mut Vec<BadInput>) {
        let mut data = data;
        if self.discarding {
            let newline = memchr::memchr(b'\n', data);
            let dropped = &data[..newline.unwrap_or(data.len())];
            self.discarded_text |= !dropped.iter().all(u8::is_ascii_whitespace);
            let Some(newline) = newline else {
                return;
            };
            self.discarding = false;
            data = &data[newline + 1..];
        }
        self.buffer.extend_from_slice(data);
        while let Some(offset) = memchr::memchr(b'\n', &self.buffer[self.scanned..]) {
            let newline = self.scanned + offset;
            self.scanned = 0;
            let mut line = self.buffer.split_to(newline + 1);
            line.truncate(newline);
            if line.len() > self.max_line {
                skipped.push(BadInput::Oversized);
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line);
            }
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > self.max_line {
            skipped.push(BadInput::Oversized);
            self.discarded_text = !self.buffer.iter().all(u8::is_ascii_whitespace);
            self.buffer = BytesMut::new();
            self.scanned = 0;
            self.discarding = true;
        }
    }

    /// The body ended: reports a last line without its newline as truncated.
    pub fn finish(&mut self) -> Option<BadInput> {
        let rest = std::mem::take(&mut self.buffer);
        self.scanned = 0;
        let truncated =
            (self.discarding && self.discarded_text) || !rest.iter().all(u8::is_ascii_whitespace);
        self.discarding = false;
        truncated.then_some(BadInput::TruncatedBody)
    }
}

impl<K: DeserializeOwned> WatchStream<K> {
    /// Waits for data, then returns every complete event received so far, in order. A batch
    /// ends with at most one [`WatchItem::Ended`] or [`WatchItem::Failed`], after which the
    /// stream is finished.
    pub async fn next_batch(&mut self) -> Vec<WatchItem<K>> {
        decode_batch(self.next_raw().await)
    }

    /// Like [`WatchStream::next_batch`], without decoding.
    pub async fn next_raw(&mut self) -> RawBatch {
        let mut batch = RawBatch::default();
        let first = match tokio::time::timeout(self.silence, self.body.frame()).await {
            Ok(frame) => frame,
            Err(_silent) => {
                tracing::debug!(silence = ?self.silence, "watch stalled; reconnecting");
                batch.ended = true;
                batch.stalled = true;
                return batch;
            }
        };
        let mut next = Some(first);
        let mut drained = 0;
        while let Some(frame) = next.take() {
            match frame {
                None => batch.ended = true,
                Some(Err(e)) => {
                    // A broken connection is a normal end of a watch (client-go and kube treat
                    // unexpected EOF the same way): resume from the last resourceVersion.
                    tracing::debug!(error = %e, "watch stream broke; resuming");
                    batch.ended = true;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        drained += data.len();
                        self.lines.push(&data, &mut batch.lines, &mut batch.skipped);
                    }
                }
            }
            if batch.ended {
                batch.skipped.extend(self.lines.finish());
                return batch;
            }
            if drained < MAX_BATCH_BYTES {
                next = self.body.frame().now_or_never();
            }
        }
        batch
    }
}

/// Decodes a [`RawBatch`]: events in order, then `Ended` if the stream ended; a line that is
/// an error (or undecodable) ends the batch as `Failed`.
pub fn decode_batch<K: DeserializeOwned>(batch: RawBatch) -> Vec<WatchItem<K>> {
    decode_batch_with(batch, ManagedFields::Keep)
}

/// [`decode_batch`], skipping each event object's `metadata.managedFields` when
/// `managed_fields` says [`ManagedFields::Drop`].
pub fn decode_batch_with<K: DeserializeOwned>(
    batch: RawBatch,
    managed_fields: ManagedFields,
) -> Vec<WatchItem<K>> {
    let mut items = Vec::with_capacity(batch.lines.len() + batch.skipped.len() + 1);
    items.extend(batch.skipped.into_iter().map(WatchItem::Skipped));
    for line in &batch.lines {
        let decoded =
            json_text(line, Request::Watch).and_then(|text| decode_line::<K>(text, managed_fields));
        match decoded {
            Ok(Ok(event)) => items.push(WatchItem::Event(event)),
            Ok(Err(quarantined)) => items.push(WatchItem::Quarantined(quarantined)),
            Err(failure) => {
                items.push(WatchItem::Failed(failure));
                return items;
            }
        }
    }
    if batch.ended {
        items.push(WatchItem::Ended {
            stalled: batch.stalled,
        });
    }
    items
}

/// Decodes one line of a watch stream. A bare `Status` line (what some proxies send) is a
/// failure like an ERROR event carrying it.
pub fn decode_event<K: DeserializeOwned>(line: &[u8]) -> Result<WatchEvent<K>, Failure> {
    decode_line(json_text(line, Request::Watch)?, ManagedFields::Keep)?.map_err(|q| {
        let message = format!("watch event for {}: {}", q.key, q.error);
        Failure::bad_input(Request::Watch, q.reason, message)
    })
}

/// One line as an event, or a quarantined object (the line is a valid event whose object
/// the cache's type cannot hold); a failure when the line is not an event at all.
fn decode_line<K: DeserializeOwned>(
    line: &str,
    managed_fields: ManagedFields,
) -> Result<Result<WatchEvent<K>, Quarantined>, Failure> {
    let whole =
        match managed_fields::from_str::<WatchEvent<K>>(line, managed_fields, Document::WatchEvent)
        {
            Ok(event) => return Ok(Ok(event)),
            Err(e) => e,
        };
    if let Ok(status) = serde_json::from_str::<Status>(line)
        && status.code != 0
    {
        return Err(Failure::from_status(Request::Watch, &status, None));
    }
    let invalid = || {
        Failure::bad_input(
            Request::Watch,
            BadInput::InvalidFrame,
            format!("undecodable watch event: {whole}"),
        )
    };
    // The slow path: the envelope as a map (the last of duplicate keys wins), then its object.
    let members = quarantine::members(line).ok_or_else(invalid)?;
    let kind = members
        .get("type")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .ok_or_else(invalid)?;
    let object = members.get("object").ok_or_else(invalid)?.get();
    let event = match kind.as_str() {
        "ERROR" => {
            let status = serde_json::from_str::<Status>(object).map_err(|_| invalid())?;
            return Err(Failure::from_status(Request::Watch, &status, None));
        }
        "BOOKMARK" => WatchEvent::Bookmark(serde_json::from_str(object).map_err(|_| invalid())?),
        "ADDED" | "MODIFIED" | "DELETED" => {
            match quarantine::decode_object::<K>(object, managed_fields) {
                Ok(obj) if kind == "ADDED" => WatchEvent::Added(obj),
                Ok(obj) if kind == "MODIFIED" => WatchEvent::Modified(obj),
                Ok(obj) => WatchEvent::Deleted(obj),
                Err(mut quarantined) => {
                    if quarantined.key.is_empty() {
                        quarantined.key = format!("a {kind} event's object");
                    }
                    return Ok(Err(quarantined));
                }
            }
        }
        _ => return Err(invalid()),
    };
    Ok(Ok(event))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[test]
    fn should_classify_like_client_go() {
        assert_eq!(
            classify(410, "Expired", "too old resource version: 1 (5)"),
            FailureKind::Expired
        );
        assert_eq!(
            classify(500, "", "Too large resource version: 9"),
            FailureKind::Expired
        );
        assert_eq!(
            classify(403, "Forbidden", "pods is forbidden"),
            FailureKind::Forbidden
        );
        assert_eq!(
            classify(429, "TooManyRequests", "slow down"),
            FailureKind::TooManyRequests
        );
        assert_eq!(
            classify(422, "Invalid", "sendInitialEvents is forbidden"),
            FailureKind::Rejected
        );
        assert_eq!(
            classify(503, "ServiceUnavailable", ""),
            FailureKind::Transient
        );
    }

    #[test]
    fn should_take_retry_after_from_details_when_no_header() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
            "reason": "TooManyRequests", "message": "slow down",
            "details": {"retryAfterSeconds": 4}
        }))
        .unwrap();
        let failure = Failure::from_status(Request::List, &status, None);
        assert_eq!(failure.retry_after, Some(Duration::from_secs(4)));
        let header_wins = Failure::from_status(Request::List, &status, parse_retry_after(" 9 "));
        assert_eq!(header_wins.retry_after, Some(Duration::from_secs(9)));
    }

    #[test]
    fn should_peek_the_continue_token_before_items() {
        let body = br#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"7","continue":"eyJ2Ijo"},"items":[{"metadata":{"name":"a","resourceVersion":"5"}}]}"#;
        assert_eq!(peek_continue(body).as_deref(), Some("eyJ2Ijo"));
        let page: Page<ConfigMap> = decode_page(body).unwrap();
        assert_eq!(page.continue_token.as_deref(), Some("eyJ2Ijo"));
        assert_eq!(page.resource_version, Some("7".into()));
        assert_eq!(page.items.len(), 1);
        let last =
            br#"{"metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"continue"}}]}"#;
        assert_eq!(peek_continue(last), None);
    }

    #[test]
    fn should_call_a_body_truncated_only_if_its_unfinished_oversized_line_held_text() {
        let outcome = |chunks: &[&[u8]]| {
            let mut splitter = LineSplitter::new(4);
            let (mut lines, mut skipped) = (Vec::new(), Vec::new());
            for chunk in chunks {
                splitter.push(chunk, &mut lines, &mut skipped);
            }
            skipped.extend(splitter.finish());
            skipped
        };
        assert_eq!(outcome(&[b"      ", b"   "]), [BadInput::Oversized]);
        assert_eq!(
            outcome(&[b"      ", b" {x"]),
            [BadInput::Oversized, BadInput::TruncatedBody]
        );
        assert_eq!(
            outcome(&[b"{\"a\":1", b"   "]),
            [BadInput::Oversized, BadInput::TruncatedBody]
        );
        assert_eq!(outcome(&[b"{\"a\":1 \n"]), [BadInput::Oversized]);
    }

    #[test]
    fn should_decode_null_items_as_empty() {
        let page: Page<ConfigMap> =
            decode_page(br#"{"metadata":{"resourceVersion":"3"},"items":null}"#).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.continue_token, None);
    }

    #[test]
    fn should_turn_an_error_event_into_a_failure_only_when_asked() {
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","code":410,"reason":"Expired","message":"too old resource version: 1 (9)"}}"#;
        match decode_event::<ConfigMap>(gone) {
            Ok(WatchEvent::Error(status)) => {
                assert_eq!(
                    Failure::from_status(Request::Watch, &status, None).kind,
                    FailureKind::Expired
                );
            }
            other => panic!("expected an ERROR event, got {other:?}"),
        }
        let garbage = decode_event::<ConfigMap>(b"{not json");
        assert_eq!(garbage.unwrap_err().kind, FailureKind::Transient);
    }

    #[test]
    fn should_refuse_bytes_that_are_not_utf8_even_where_the_type_ignores_them() {
        // The bad byte sits in a member ConfigMap ignores (serde_json's from_slice skips it
        // unchecked) and, on the page, in managedFields (which Drop skips).
        let event =
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"x\":\"\xff\"}}";
        let failure = decode_event::<ConfigMap>(event).unwrap_err();
        assert_eq!(failure.bad_input, Some(BadInput::InvalidFrame));
        assert!(
            failure
                .message
                .contains("not UTF-8 (invalid byte at offset 55)"),
            "{failure}"
        );
        let page = b"{\"items\":[{\"metadata\":{\"name\":\"a\",\"managedFields\":[\"\xff\"]}}]}";
        for managed_fields in [ManagedFields::Keep, ManagedFields::Drop] {
            let failure = decode_page_with::<ConfigMap>(page, managed_fields).unwrap_err();
            assert_eq!(
                failure.bad_input,
                Some(BadInput::InvalidFrame),
                "{managed_fields:?}"
            );
            assert_eq!(failure.request, Request::List);
        }
        let batch = RawBatch {
            lines: vec![BytesMut::from(&event[..])],
            ..RawBatch::default()
        };
        match decode_batch::<ConfigMap>(batch).as_slice() {
            [WatchItem::Failed(failure)] => {
                assert_eq!(failure.bad_input, Some(BadInput::InvalidFrame));
            }
            other => panic!("expected one failure, got {other:?}"),
        }
    }
}
