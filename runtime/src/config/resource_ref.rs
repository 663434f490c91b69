//! `ResourceRef`: the `resource = "apps/v1/deployments"` of a `[[watch]]`, parsed into group,
//! version and plural — the GroupVersionResource that client-go's dynamic informers are keyed by.
//!
//! The written form is the REST path without `/apis`: `v1/pods` for the core group (its
//! group is empty, as in `/api/v1/pods`), `apps/v1/deployments`, `example.com/v1/widgets`.
//! Each part is checked against the apiserver's own naming rules, so a typo fails at load time
//! rather than as a 404 on the first list.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A resource to watch: API group (empty for the core group), version and plural name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    /// API group, `""` for the core group (`v1/pods`).
    pub group: String,
    /// API version within the group, e.g. `v1`, `v1beta1`.
    pub version: String,
    /// Lowercase plural resource name, e.g. `pods`.
    pub plural: String,
}

/// Why a resource string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResourceRefError {
    #[error(
        "\"{0}\" is not [group/]version/plural; write e.g. \"v1/pods\" or \"apps/v1/deployments\""
    )]
    /// Not two or three `/`-separated parts.
    Shape(String),
    #[error(
        "\"{input}\": version \"{version}\" is not a Kubernetes API version (v1, v2beta1, v1alpha3)"
    )]
    /// The version is not like `v1`, `v2beta1`.
    Version {
        /// The text as written.
        input: String,
        /// The version part as written.
        version: String,
    },
    #[error(
        "\"{input}\": plural \"{plural}\" must be a lowercase name like \"pods\" or \"deployments\""
    )]
    /// The plural is not a lowercase name.
    Plural {
        /// The text as written.
        input: String,
        /// The plural part as written.
        plural: String,
    },
    #[error(
        "\"{input}\": group \"{group}\" must be a lowercase DNS name like \"apps\" or \"example.com\""
    )]
    /// The group is not a lowercase DNS name.
    Group {
        /// The text as written.
        input: String,
        /// The group part as written.
        group: String,
    },
}

impl ResourceRef {
    /// `apiVersion` as written in manifests: `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource as kube addresses it. Only the plural reaches the URL; the kind, unknown
    /// until discovery, comes with each object, so it is left empty.
    pub fn api_resource(&self) -> kube::api::ApiResource {
        kube::api::ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: String::new(),
            plural: self.plural.clone(),
        }
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.plural)
    }
}

impl FromStr for ResourceRef {
    type Err = ResourceRefError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = input.split('/').collect();
        let (group, version, plural) = match parts.as_slice() {
            [version, plural] => ("", *version, *plural),
            [group, version, plural] => (*group, *version, *plural),
            _ => return Err(ResourceRefError::Shape(input.into())),
        };
        if version.is_empty() || plural.is_empty() || (parts.len() == 3 && group.is_empty()) {
            return Err(ResourceRefError::Shape(input.into()));
        }
        if !is_api_version(version) {
            let version = version.into();
            return Err(ResourceRefError::Version {
                input: input.into(),
                version,
            });
        }
        if !is_dns_label(plural) {
            return Err(ResourceRefError::Plural {
                input: input.into(),
                plural: plural.into(),
            });
        }
        if !group.is_empty() && !group.split('.').all(is_dns_label) {
            return Err(ResourceRefError::Group {
                input: input.into(),
                group: group.into(),
            });
        }
        Ok(Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        })
    }
}

/// `v<N>` optionally followed by `alpha<N>` or `beta<N>` — the apiserver's version grammar.
fn is_api_version(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let major_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if major_len == 0 || rest.starts_with('0') {
        return false;
    }
    let stability = &rest[major_len..];
    let minor = stability
        .strip_prefix("alpha")
        .or_else(|| stability.strip_prefix("beta"));
    match minor {
        None => stability.is_empty(),
        Some(n) => !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
    }
}

/// RFC 1123 label: 1–63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub(crate) fn is_dns_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvr(group: &str, version: &str, plural: &str) -> ResourceRef {
        ResourceRef {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn should_parse_core_named_and_custom_groups() {
        assert_eq!("v1/pods".parse(), Ok(gvr("", "v1", "pods")));
        assert_eq!(
            "apps/v1/deployments".parse(),
            Ok(gvr("apps", "v1", "deployments"))
        );
        assert_eq!(
            "example.com/v1beta2/widgets".parse(),
            Ok(gvr("example.com", "v1beta2", "widgets"))
        );
    }

    #[test]
    fn should_round_trip_through_display() {
        for s in [
            "v1/pods",
            "apps/v1/deployments",
            "example.com/v1alpha1/widgets",
        ] {
            assert_eq!(s.parse::<ResourceRef>().unwrap().to_string(), s);
        }
        assert_eq!(
            "v1/pods".parse::<ResourceRef>().unwrap().api_version(),
            "v1"
        );
    }

    #[test]
    fn should_name_the_bad_part() {
        let err = |s: &str| s.parse::<ResourceRef>().unwrap_err();
        assert!(matches!(err("pods"), ResourceRefError::Shape(_)));
        assert!(matches!(err("a/b/c/d"), ResourceRefError::Shape(_)));
        assert!(matches!(err("/v1/pods"), ResourceRefError::Shape(_)));
        assert!(matches!(
            err("apps/1/deployments"),
            ResourceRefError::Version { .. }
        ));
        assert!(matches!(
            err("apps/v1beta/deployments"),
            ResourceRefError::Version { .. }
        ));
        assert!(matches!(err("v1/Pods"), ResourceRefError::Plural { .. }));
        assert!(matches!(
            err("Example.com/v1/widgets"),
            ResourceRefError::Group { .. }
        ));
    }
}
