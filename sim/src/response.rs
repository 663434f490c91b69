//! Building HTTP responses the way kube-apiserver shapes them: JSON bodies with
//! `Content-Type: application/json`, `Cache-Control: no-cache, private`, an `Audit-Id`,
//! failures as `metav1.Status` (status/*.json), unknown paths as text/plain
//! `404 page not found`. Every body is a [`Body`] so that buffered and streamed
//! (watch) responses share one type.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use serde_json::{Value, json};

use crate::store::Status;

/// The body of every response the sim sends.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete (non-streamed) body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A response with the headers every apiserver answer carries.
pub fn with_content_type(code: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    if let Ok(audit_id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("audit-id", audit_id);
    }
    response
}

/// A JSON body already serialized.
pub fn json_bytes(code: StatusCode, bytes: impl Into<Bytes>) -> Response<Body> {
    with_content_type(code, "application/json", full(bytes))
}

/// A JSON value.
pub fn json_value(code: StatusCode, value: &Value) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(value).unwrap_or_default())
}

/// A failure as its `Status` body, with the Status' own code.
pub fn status(status: &Status) -> Response<Body> {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_value(code, &status.to_json());
    if code == StatusCode::FORBIDDEN {
        response.headers_mut().insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    if let Some(retry) = status
        .details
        .as_ref()
        .and_then(|d| d.get("retryAfterSeconds"))
        .and_then(Value::as_u64)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    }
    response
}

/// What the real server answers for a path no handler serves (unknown group versions,
/// `/openapi/v9`, ...): a plain-text 404, not a Status.
pub fn page_not_found() -> Response<Body> {
    with_content_type(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        full("404 page not found\n"),
    )
}

/// A plain-text 200 (`/healthz` and friends).
pub fn text_ok(text: &'static str) -> Response<Body> {
    with_content_type(StatusCode::OK, "text/plain; charset=utf-8", full(text))
}

/// `kind: Status`, `status: Failure` with no details (405, 415, 406, 404 unknown resource).
pub fn failure(code: u16, reason: &str, message: &str) -> Status {
    Status {
        code,
        reason: reason.to_string(),
        message: message.to_string(),
        details: Some(json!({})),
        metadata: None,
    }
}

/// status/404-unknown-resource.json
pub fn unknown_resource() -> Status {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// status/405-*.json
pub fn method_not_allowed() -> Status {
    failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// status/415-unsupported-patch-type.json
pub fn unsupported_media_type() -> Status {
    failure(415, "UnsupportedMediaType", "415: Unsupported Media Type")
}

/// headers/list-406-body.json
pub fn not_acceptable() -> Status {
    failure(
        406,
        "NotAcceptable",
        "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, \
         application/vnd.kubernetes.protobuf, application/json;stream=watch, \
         application/vnd.kubernetes.protobuf;stream=watch",
    )
}

/// status/401-wrong-token.json (no details at all).
pub fn unauthorized() -> Status {
    Status {
        code: 401,
        reason: "Unauthorized".into(),
        message: "Unauthorized".into(),
        details: None,
        metadata: None,
    }
}

/// A 400 BadRequest naming what was wrong with the request.
pub fn bad_request(message: impl Into<String>) -> Status {
    Status {
        code: 400,
        reason: "BadRequest".into(),
        message: message.into(),
        details: None,
        metadata: None,
    }
}

/// The `Status` of a successful delete of an object that is not returned (status/200-delete-configmap.json).
pub fn delete_success(group: &str, plural: &str, name: &str, uid: Option<&str>) -> Value {
    let mut details = serde_json::Map::new();
    details.insert("name".into(), json!(name));
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    details.insert("kind".into(), json!(plural));
    if let Some(uid) = uid {
        details.insert("uid".into(), json!(uid));
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// The Status Success a create answers when it returns no object (pod `binding` and
/// `eviction`): the create handler sets `code` to 201.
pub fn created_success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}
