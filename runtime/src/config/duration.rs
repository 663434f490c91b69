//! Durations as people write them in `clusters.toml`: `"30s"`, `"5m"`, `"1h30m"`, `"250ms"`.
//!
//! The grammar is Go's `time.ParseDuration` without signs or fractions (what `kubectl` and
//! controller-runtime flags accept), so a value copied from a Go controller's flags reads the
//! same here. `"0s"` is a valid zero; what zero means (usually "off") is the caller's choice.

use std::time::Duration;

use thiserror::Error;

/// Why a duration string was rejected. Each message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("empty duration; write a number and a unit, e.g. \"30s\" or \"5m\"")]
    Empty,
    #[error(
        "\"{input}\" has no unit after {number}; write e.g. \"{number}s\" (units: ms, s, m, h, d)"
    )]
    /// A number without a unit (`30`).
    MissingUnit {
        /// The text as written.
        input: String,
        /// The number before the missing unit.
        number: u64,
    },
    /// A unit other than ms, s, m, h, d.
    #[error("\"{input}\" has unknown unit \"{unit}\" (units: ms, s, m, h, d)")]
    UnknownUnit {
        /// The text as written.
        input: String,
        /// The unit as written.
        unit: String,
    },
    #[error(
        "\"{input}\" is not a duration: expected a number at \"{rest}\", e.g. \"30s\" or \"1h30m\""
    )]
    /// Text where a number should be.
    ExpectedNumber {
        /// The text as written.
        input: String,
        /// The part where a number was expected.
        rest: String,
    },
    /// More than `Duration` can hold.
    #[error("\"{input}\" is too long a duration")]
    Overflow {
        /// The text as written.
        input: String,
    },
}

/// Parses `"1h30m"`-style durations: one or more `<integer><unit>` pairs, units `ms`, `s`,
/// `m`, `h`, `d`. Whitespace around the value is ignored.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber {
                input: text.into(),
                rest: rest.into(),
            });
        }
        let overflow = || DurationError::Overflow { input: text.into() };
        let number: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per_unit: u64 = match unit {
            "" => {
                return Err(DurationError::MissingUnit {
                    input: text.into(),
                    number,
                });
            }
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: text.into(),
                    unit: other.into(),
                });
            }
        };
        let millis = number.checked_mul(millis_per_unit).ok_or_else(overflow)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_single_and_compound_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 1d "), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn should_reject_with_a_reason() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("30"),
            Err(DurationError::MissingUnit { number: 30, .. })
        ));
        assert!(matches!(
            parse_duration("3 weeks"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("weeks"),
            Err(DurationError::ExpectedNumber { .. })
        ));
        assert!(matches!(
            parse_duration("3w"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::ExpectedNumber { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .to_string()
                .contains("unit \"x\"")
        );
    }
}
