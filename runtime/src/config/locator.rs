//! `Locator`: maps key paths of `clusters.toml` to line and column, and error spans back to
//! key paths.
//!
//! The `config` crate merges sources into values without positions, so the file is also
//! parsed with `toml`'s spanned document model; every message about a value taken from the
//! file can then say where it was written.

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::key_path::KeyPath;

/// Where a key and its value were written, as byte ranges into the file.
#[derive(Debug, Clone)]
struct Spans {
    key: Range<usize>,
    value: Range<usize>,
}

/// Positions of every key in one parsed file.
#[derive(Debug)]
pub(crate) struct Locator {
    /// The file, to count columns in characters.
    text: String,
    /// Byte offset at which each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    /// Keyed by [`KeyPath::dotted`]; array elements have their own entries (`clusters.1`).
    entries: HashMap<String, (KeyPath, Spans)>,
}

impl Locator {
    /// Parses `text`; a TOML syntax error comes back with its byte span.
    pub(crate) fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let document = DeTable::parse(text)?;
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut locator = Self {
            text: text.to_string(),
            line_starts,
            entries: HashMap::new(),
        };
        locator.walk_table(&KeyPath::default(), document.get_ref());
        Ok(locator)
    }

    fn walk_table(&mut self, path: &KeyPath, table: &DeTable<'_>) {
        for (key, value) in table {
            let child = path.key(key.get_ref());
            let spans = Spans {
                key: key.span(),
                value: value.span(),
            };
            self.entries.insert(child.dotted(), (child.clone(), spans));
            self.walk_value(&child, value.get_ref());
        }
    }

    fn walk_value(&mut self, path: &KeyPath, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.walk_table(path, table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = path.index(i);
                    let spans = Spans {
                        key: item.span(),
                        value: item.span(),
                    };
                    self.entries.insert(child.dotted(), (child.clone(), spans));
                    self.walk_value(&child, item.get_ref());
                }
            }
            _ => {}
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts[line - 1];
        let end = offset.clamp(start, self.text.len());
        let column = self
            .text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// Line and column of `path`'s key, else of its nearest written ancestor (a key left out of
    /// a `[[clusters]]` entry points at that entry). `None` when nothing on the path was written.
    pub(crate) fn position(&self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut probe = path.clone();
        loop {
            if let Some((_, spans)) = self.entries.get(&probe.dotted()) {
                return Some(self.line_col(spans.key.start));
            }
            if probe.0.is_empty() {
                return None;
            }
            probe = probe.parent();
        }
    }

    /// The innermost key whose key or value span covers `offset` (the key an error is about).
    pub(crate) fn path_at(&self, offset: usize) -> KeyPath {
        let covers = |r: &Range<usize>| r.start <= offset && offset < r.end.max(r.start + 1);
        self.entries
            .values()
            .filter(|(_, spans)| covers(&spans.key) || covers(&spans.value))
            .max_by_key(|(path, _)| path.0.len())
            .map(|(path, _)| path.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[runtime]\nmetrics_addr = \"x\"\n\n[[clusters]]\nname = \"a\"\n\n[[clusters]]\nname = \"b\"\nembedded = { pods = 3 }\n";

    #[test]
    fn should_find_lines_of_keys_and_array_elements() {
        let locator = Locator::parse(DOC).unwrap();
        assert_eq!(
            locator.position(&KeyPath::root("runtime").key("metrics_addr")),
            Some((2, 1))
        );
        let second = KeyPath::root("clusters").index(1);
        assert_eq!(locator.position(&second.key("name")), Some((8, 1)));
        assert_eq!(
            locator.position(&second.key("embedded").key("pods")),
            Some((9, 14))
        );
        // A key that was not written points at its entry.
        assert_eq!(locator.position(&second.key("qps")).map(|p| p.0), Some(7));
    }

    #[test]
    fn should_map_an_offset_back_to_the_innermost_key() {
        let locator = Locator::parse(DOC).unwrap();
        let offset = DOC.find("pods").unwrap();
        let path = locator.path_at(offset);
        assert_eq!(path.dotted(), "clusters.1.embedded.pods");
    }
}
