//! The pods API of the seed's comparison (a gin service answering `/pods` either from an
//! informer's lister or by listing from the API server on every request), as an axum router:
//!
//! - `GET /pods[?labelSelector=k=v,...]`: from the lister (the cache), no API-server call;
//!   the answer is the cache's stored JSON (`Lister::list_json`), written piece by piece;
//! - `GET /pods/direct[?labelSelector=k=v,...]`: a List request to the API server each time.
//!
//! Both answer `{"code":200,"message":"pong","result":[pods]}` as the seed does. Only
//! equality selectors (`k=v`, comma-separated) are accepted; anything else is a 400 naming
//! the part that was not understood.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::core::{Expression, Selector};
use panoptes_actors::Lister;
use serde::Serialize;

#[derive(Clone)]
struct PodsApi {
    lister: Lister<Pod>,
    api: kube::Api<Pod>,
}

#[derive(Serialize)]
struct Answer<T> {
    code: u16,
    message: &'static str,
    result: T,
}

/// The router: `lister` answers `/pods`, `client` lists for `/pods/direct`.
pub fn router(lister: Lister<Pod>, client: kube::Client) -> Router {
    let state = PodsApi {
        lister,
        api: kube::Api::all(client),
    };
    Router::new()
        .route("/pods", get(from_lister))
        .route("/pods/direct", get(direct))
        .with_state(state)
}

fn bad_request(message: String) -> Response {
    let body = Answer {
        code: 400,
        message: "bad request",
        result: message,
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// `k=v,k2=v2` as equality expressions.
fn equality_selector(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.ends_with('!') && !v.starts_with('=') => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "labelSelector part {part:?} is not `key=value` (only equality selectors are supported)"
            )),
        })
        .collect()
}

async fn from_lister(
    State(state): State<PodsApi>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let pairs = match query.get("labelSelector").map(|raw| equality_selector(raw)) {
        Some(Err(message)) => return bad_request(message),
        Some(Ok(pairs)) => pairs,
        None => Vec::new(),
    };
    let selector: Selector = pairs
        .into_iter()
        .map(|(k, v)| Expression::Equal(k, v))
        .collect();
    // The stored bytes, handed to the socket as they are: with a compact cache nothing is
    // decoded, encoded or even copied into one buffer (a typed cache serialises each pod here,
    // as `Json` would); hyper writes the pieces with vectored writes.
    let list = state.lister.list_json(None, &selector);
    let mut pieces = Vec::with_capacity(2 * list.items.len() + 2);
    pieces.push(Bytes::from_static(ANSWER_HEAD));
    for (i, pod) in list.items.into_iter().enumerate() {
        if i > 0 {
            pieces.push(Bytes::from_static(b","));
        }
        pieces.push(pod);
    }
    pieces.push(Bytes::from_static(b"]}"));
    let length: usize = pieces.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures::stream::iter(
        pieces.into_iter().map(Ok::<_, Infallible>),
    ));
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response()
}

/// What the seed's answer starts with, before the pods.
const ANSWER_HEAD: &[u8] = br#"{"code":200,"message":"pong","result":["#;

async fn direct(
    State(state): State<PodsApi>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut params = ListParams::default();
    if let Some(raw) = query.get("labelSelector") {
        if let Err(message) = equality_selector(raw) {
            return bad_request(message);
        }
        params = params.labels(raw);
    }
    match state.api.list(&params).await {
        Ok(list) => Json(Answer {
            code: 200,
            message: "pong",
            result: list.items,
        })
        .into_response(),
        Err(error) => {
            let body = Answer {
                code: 502,
                message: "listing from the API server failed",
                result: error.to_string(),
            };
            (StatusCode::BAD_GATEWAY, Json(body)).into_response()
        }
    }
}
