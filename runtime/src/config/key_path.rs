//! `KeyPath`: where a value lives in `clusters.toml` (`clusters[1].name`), shown the way the
//! file is written (`[[clusters]] #2 name`) and as the environment variable that overrides it
//! (`PANOPTES__RUNTIME__METRICS_ADDR`).

use std::fmt;

/// Prefix of every environment override; `__` separates keys (`config` crate convention).
pub const ENV_PREFIX: &str = "PANOPTES";
/// Separator between the prefix and keys of an environment override.
pub const ENV_SEPARATOR: &str = "__";

/// One step into the document: a table key or an index into an array of tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `[table]` or `key = ...`: a key by name.
    Key(String),
    /// `[[array]]` entry, 0-based (shown 1-based as `#2`).
    Index(usize),
}

/// A path from the document root to a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// The path of one top-level key.
    pub fn root(key: &str) -> Self {
        Self(vec![Segment::Key(key.into())])
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The path without its last step; the root stays the root.
    pub fn parent(&self) -> Self {
        let mut segments = self.0.clone();
        segments.pop();
        Self(segments)
    }

    /// Machine form used as a lookup key: `clusters.1.name`.
    pub fn dotted(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                Segment::Key(k) => k.clone(),
                Segment::Index(i) => i.to_string(),
            })
            .collect();
        parts.join(".")
    }

    /// The environment variable that overrides this key, e.g. `PANOPTES__TELEMETRY__LOG`.
    pub fn env_variable(&self) -> String {
        let mut name = String::from(ENV_PREFIX);
        for segment in &self.0 {
            name.push_str(ENV_SEPARATOR);
            match segment {
                Segment::Key(k) => name.push_str(&k.to_uppercase()),
                Segment::Index(i) => name.push_str(&i.to_string()),
            }
        }
        name
    }
}

/// `[[clusters]] #2 name`, `[runtime] metrics_addr`, `[telemetry]`, or a bare top-level key.
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rest = |from: usize| {
            let tail: Vec<String> = self.0[from..]
                .iter()
                .map(|s| match s {
                    Segment::Key(k) => k.clone(),
                    Segment::Index(i) => format!("#{}", i + 1),
                })
                .collect();
            tail.join(".")
        };
        match self.0.as_slice() {
            [] => f.write_str("(top level)"),
            [Segment::Key(table), Segment::Index(i), tail @ ..] => {
                write!(f, "[[{table}]] #{}", i + 1)?;
                if tail.is_empty() {
                    Ok(())
                } else {
                    write!(f, " {}", rest(2))
                }
            }
            [Segment::Key(table), _, ..] => write!(f, "[{table}] {}", rest(1)),
            [Segment::Key(key)] if matches!(key.as_str(), "runtime" | "telemetry") => {
                write!(f, "[{key}]")
            }
            [Segment::Key(key)] if matches!(key.as_str(), "clusters" | "watch") => {
                write!(f, "[[{key}]]")
            }
            _ => f.write_str(&rest(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_render_like_the_file_and_like_the_environment() {
        let name = KeyPath::root("clusters").index(1).key("name");
        assert_eq!(name.to_string(), "[[clusters]] #2 name");
        assert_eq!(name.dotted(), "clusters.1.name");
        let pods = KeyPath::root("clusters")
            .index(0)
            .key("embedded")
            .key("pods");
        assert_eq!(pods.to_string(), "[[clusters]] #1 embedded.pods");
        let addr = KeyPath::root("runtime").key("metrics_addr");
        assert_eq!(addr.to_string(), "[runtime] metrics_addr");
        assert_eq!(addr.env_variable(), "PANOPTES__RUNTIME__METRICS_ADDR");
        assert_eq!(KeyPath::root("bogus").to_string(), "bogus");
        assert_eq!(KeyPath::root("watch").to_string(), "[[watch]]");
    }
}
