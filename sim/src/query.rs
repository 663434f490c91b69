//! The query parameters of API requests (metav1 `ListOptions`, `GetOptions`,
//! `CreateOptions`/`UpdateOptions`/`PatchOptions`, `DeleteOptions`), decoded once and turned
//! into the store's option types. Unknown parameters are ignored, as the real server does;
//! malformed values of known ones are a 400 naming the parameter.

use std::time::Duration;

use crate::store::{
    DeleteOptions, ListOptions, ResourceVersionMatch, Status, WatchOptions, WriteOptions,
};

/// Everything the sim reads from a query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `?watch=true` (or `1`): a watch instead of a list.
    pub watch: bool,
    /// `?labelSelector=`, unparsed.
    pub label_selector: Option<String>,
    /// `?fieldSelector=`, unparsed.
    pub field_selector: Option<String>,
    /// `?limit=`: page size of a list; absent lists everything.
    pub limit: Option<u64>,
    /// `?continue=`: the token of the previous page.
    pub continue_token: Option<String>,
    /// `?resourceVersion=`, unparsed (see [`crate::store::ListOptions`] for what values mean).
    pub resource_version: Option<String>,
    /// `?resourceVersionMatch=`.
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// `?timeoutSeconds=`: how long a watch stays open.
    pub timeout: Option<Duration>,
    /// `?allowWatchBookmarks=true`.
    pub allow_watch_bookmarks: bool,
    /// `?sendInitialEvents=`: a watch that starts with the current objects (WatchList).
    pub send_initial_events: Option<bool>,
    /// `?fieldManager=` of writes.
    pub field_manager: Option<String>,
    /// `?fieldValidation=` (`Strict`, `Warn`, `Ignore`).
    pub field_validation: Option<String>,
    /// `?dryRun=All`.
    pub dry_run: bool,
    /// `?force=true` of server-side apply.
    pub force: bool,
    /// `?gracePeriodSeconds=` of deletes.
    pub grace_period_seconds: Option<i64>,
    /// `?propagationPolicy=` of deletes.
    pub propagation_policy: Option<String>,
    /// `includeObject` of Table requests: None, Metadata (default) or Object.
    pub include_object: Option<String>,
}

fn invalid(name: &str, value: &str) -> Status {
    crate::response::bad_request(format!(
        "invalid value {value:?} for query parameter {name}"
    ))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, Status> {
    match value {
        "true" | "1" | "True" | "TRUE" | "t" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "" => Ok(false),
        _ => Err(invalid(name, value)),
    }
}

impl Query {
    /// Decodes `a=b&c=d` (percent-encoding and `+` for space).
    pub fn parse(raw: Option<&str>) -> Result<Query, Status> {
        let mut query = Query::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key);
            let value = percent_decode(value);
            let v = value.as_str();
            match key.as_str() {
                "watch" => query.watch = parse_bool("watch", v)?,
                "labelSelector" => {
                    query.label_selector = Some(value.clone()).filter(|s| !s.is_empty())
                }
                "fieldSelector" => {
                    query.field_selector = Some(value.clone()).filter(|s| !s.is_empty())
                }
                "limit" => {
                    query.limit =
                        Some(v.parse().map_err(|_| invalid("limit", v))?).filter(|l| *l > 0)
                }
                "continue" => query.continue_token = Some(value.clone()).filter(|s| !s.is_empty()),
                "resourceVersion" => query.resource_version = Some(value.clone()),
                "resourceVersionMatch" => {
                    query.resource_version_match = match v {
                        "" => None,
                        "NotOlderThan" => Some(ResourceVersionMatch::NotOlderThan),
                        "Exact" => Some(ResourceVersionMatch::Exact),
                        _ => return Err(invalid("resourceVersionMatch", v)),
                    }
                }
                "timeoutSeconds" => {
                    let secs: u64 = v.parse().map_err(|_| invalid("timeoutSeconds", v))?;
                    query.timeout = Some(Duration::from_secs(secs)).filter(|d| !d.is_zero());
                }
                // `timeout` (e.g. `?timeout=32s` from kubectl) is a request deadline; the sim answers at once.
                "allowWatchBookmarks" => {
                    query.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", v)?
                }
                "sendInitialEvents" => {
                    query.send_initial_events = Some(parse_bool("sendInitialEvents", v)?)
                }
                "fieldManager" => {
                    query.field_manager = Some(value.clone()).filter(|s| !s.is_empty())
                }
                "fieldValidation" => {
                    query.field_validation = Some(value.clone()).filter(|s| !s.is_empty())
                }
                "dryRun" => query.dry_run = v == "All",
                "force" => query.force = parse_bool("force", v)?,
                "gracePeriodSeconds" => {
                    query.grace_period_seconds =
                        Some(v.parse().map_err(|_| invalid("gracePeriodSeconds", v))?)
                }
                "propagationPolicy" => {
                    query.propagation_policy = Some(value.clone()).filter(|s| !s.is_empty())
                }
                "includeObject" => query.include_object = Some(value.clone()),
                _ => {}
            }
        }
        Ok(query)
    }

    /// The store's options for a list with this query.
    pub fn list_options(&self) -> ListOptions {
        ListOptions {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            limit: self.limit,
            continue_token: self.continue_token.clone(),
            resource_version: self.resource_version.clone(),
            resource_version_match: self.resource_version_match,
        }
    }

    /// The store's options for a watch with this query.
    pub fn watch_options(&self) -> WatchOptions {
        WatchOptions {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            resource_version: self.resource_version.clone(),
            resource_version_match: self.resource_version_match,
            allow_bookmarks: self.allow_watch_bookmarks,
            send_initial_events: self.send_initial_events,
            timeout: self.timeout,
        }
    }

    /// Write options; `default_manager` is the server's choice when `fieldManager` is absent.
    pub fn write_options(&self, default_manager: Option<String>) -> WriteOptions {
        WriteOptions {
            field_manager: self.field_manager.clone().or(default_manager),
            dry_run: self.dry_run,
            field_validation: self.field_validation.clone(),
            force: self.force,
        }
    }

    /// Delete options from the query, overridden by a `DeleteOptions` body when one is sent.
    pub fn delete_options(&self, body: &[u8]) -> Result<DeleteOptions, Status> {
        let mut options = DeleteOptions {
            grace_period_seconds: self.grace_period_seconds,
            propagation_policy: self.propagation_policy.clone(),
            preconditions_uid: None,
            preconditions_resource_version: None,
            dry_run: self.dry_run,
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(options);
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            crate::response::bad_request(format!("invalid DeleteOptions body: {e}"))
        })?;
        if let Some(grace) = value.get("gracePeriodSeconds").and_then(|v| v.as_i64()) {
            options.grace_period_seconds = Some(grace);
        }
        if let Some(policy) = value.get("propagationPolicy").and_then(|v| v.as_str()) {
            options.propagation_policy = Some(policy.to_string());
        }
        if let Some(orphan) = value.get("orphanDependents").and_then(|v| v.as_bool()) {
            options.propagation_policy =
                Some(if orphan { "Orphan" } else { "Background" }.to_string());
        }
        if let Some(pre) = value.get("preconditions") {
            options.preconditions_uid = pre.get("uid").and_then(|v| v.as_str()).map(str::to_string);
            options.preconditions_resource_version = pre
                .get("resourceVersion")
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
        if let Some(dry) = value.get("dryRun").and_then(|v| v.as_array()) {
            options.dry_run |= dry.iter().any(|d| d == "All");
        }
        Ok(options)
    }
}

/// Percent-decoding of one query component (`+` is a space, as in HTML forms and Go's url.ParseQuery).
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_list_and_watch_parameters() {
        let q = Query::parse(Some(
            "watch=true&labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&limit=500&resourceVersion=0\
             &resourceVersionMatch=NotOlderThan&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=290",
        ))
        .expect("valid query");
        assert!(q.watch && q.allow_watch_bookmarks);
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a,b)"));
        assert_eq!(q.limit, Some(500));
        assert_eq!(q.send_initial_events, Some(true));
        assert_eq!(
            q.resource_version_match,
            Some(ResourceVersionMatch::NotOlderThan)
        );
        assert_eq!(q.timeout, Some(Duration::from_secs(290)));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let err = Query::parse(Some("limit=ten")).expect_err("limit must be a number");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("limit"), "{}", err.message);
    }

    #[test]
    fn delete_body_overrides_the_query() {
        let q = Query::parse(Some("gracePeriodSeconds=30")).expect("valid");
        let opts = q.delete_options(br#"{"kind":"DeleteOptions","gracePeriodSeconds":0,"propagationPolicy":"Foreground"}"#).expect("valid body");
        assert_eq!(opts.grace_period_seconds, Some(0));
        assert_eq!(opts.propagation_policy.as_deref(), Some("Foreground"));
        assert!(q.delete_options(b"{").is_err());
    }

    #[test]
    fn percent_decoding_handles_edge_cases() {
        assert_eq!(percent_decode("a%3D1"), "a=1");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
