//! Authentication and the little authorization a simulated cluster needs, as a v1.28 server
//! with static tokens and anonymous auth answers: the cluster's bearer token is an admin
//! (system:masters); a wrong token is 401 (status/401-wrong-token.json); no token is
//! `system:anonymous`, who may read only `/version`, `/healthz`, `/readyz` and `/livez`
//! (system:public-info-viewer) and gets 403 for everything else (status/403-anonymous*.json).
//! With anonymous auth off, no token is 401 too.

use http::HeaderMap;
use serde_json::json;

use crate::store::Status;

/// The user name of the cluster's token, as it appears in RBAC messages.
pub const ADMIN_USER: &str = "sim-admin";
/// The anonymous user.
pub const ANONYMOUS_USER: &str = "system:anonymous";

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Presents the cluster's bearer token: [`ADMIN_USER`], allowed everything.
    Admin,
    /// No credentials: [`ANONYMOUS_USER`].
    Anonymous,
}

impl Identity {
    /// The user name the real server reports for this identity (in audit and `Forbidden` messages).
    pub fn user_name(self) -> &'static str {
        match self {
            Identity::Admin => ADMIN_USER,
            Identity::Anonymous => ANONYMOUS_USER,
        }
    }
}

/// Checks the `Authorization` header against the cluster's token.
pub fn authenticate(
    headers: &HeaderMap,
    token: &str,
    anonymous_auth: bool,
) -> Result<Identity, Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return if anonymous_auth {
            Ok(Identity::Anonymous)
        } else {
            Err(crate::response::unauthorized())
        };
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match presented {
        Some(t) if t == token => Ok(Identity::Admin),
        _ => Err(crate::response::unauthorized()),
    }
}

/// Whether anonymous may read this non-resource path.
pub fn anonymous_may_read(path: &str) -> bool {
    ["/version", "/healthz", "/readyz", "/livez"]
        .iter()
        .any(|allowed| {
            path == *allowed
                || path
                    .strip_prefix(allowed)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// 403 for a non-resource path (status/403-anonymous-api.json).
pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Status {
    Status {
        code: 403,
        reason: "Forbidden".into(),
        message: format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        details: Some(json!({})),
        metadata: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(a).expect("header"),
            );
        }
        h
    }

    #[test]
    fn tokens() {
        assert_eq!(
            authenticate(&headers(Some("Bearer s3cret")), "s3cret", true),
            Ok(Identity::Admin)
        );
        assert_eq!(
            authenticate(&headers(Some("Bearer nope")), "s3cret", true).map_err(|s| s.code),
            Err(401)
        );
        assert_eq!(
            authenticate(&headers(None), "s3cret", true),
            Ok(Identity::Anonymous)
        );
        assert_eq!(
            authenticate(&headers(None), "s3cret", false).map_err(|s| s.code),
            Err(401)
        );
    }

    #[test]
    fn anonymous_paths() {
        assert!(anonymous_may_read("/version") && anonymous_may_read("/healthz/ping"));
        assert!(!anonymous_may_read("/api") && !anonymous_may_read("/versionz"));
        let status = forbidden_path(ANONYMOUS_USER, "get", "/api");
        assert_eq!(
            status.message,
            r#"forbidden: User "system:anonymous" cannot get path "/api""#
        );
    }
}
