//! OpenAPI endpoints, reduced to what clients need (fallbacks.md): kubectl 1.28 requires
//! `GET /openapi/v2` to be 200 for apply / create -f / replace / edit, and an empty body of
//! the protobuf content type is a valid, empty `Document`; `/openapi/v3` answers 404, which
//! kubectl 1.28 (and 1.32 when v2 works) tolerates. Only `kubectl explain` needs real schemas.

use http::{Response, StatusCode};

use crate::response::{Body, full, page_not_found, with_content_type};

/// The content type of the protobuf OpenAPI v2 document (headers/openapi-v2-head.txt).
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Answers `/openapi/...` paths; `None` when the path is not an OpenAPI one.
pub fn serve(path: &str) -> Option<Response<Body>> {
    match path {
        "/openapi/v2" => Some(with_content_type(
            StatusCode::OK,
            OPENAPI_V2_PROTOBUF,
            full(""),
        )),
        p if p.starts_with("/openapi/") => Some(page_not_found()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_is_an_empty_protobuf_document_and_v3_is_absent() {
        let v2 = serve("/openapi/v2").expect("served");
        assert_eq!(v2.status(), StatusCode::OK);
        assert_eq!(v2.headers()["content-type"], OPENAPI_V2_PROTOBUF);
        assert_eq!(
            serve("/openapi/v3").expect("served").status(),
            StatusCode::NOT_FOUND
        );
        assert!(serve("/version").is_none());
    }
}
