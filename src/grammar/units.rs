//! Units used in plans: durations (`500ms`, `5s`, `1m30s`), rates (`100/s`, `30/m`) and sizes
//! (`64KiB`, `1MiB`).
//!
//! Why: a plan states time and throughput with explicit units so `30` can never be misread as
//! seconds or milliseconds. Both types deserialize from strings (with errors that show the
//! expected form), serialize back to their canonical text and describe themselves in the
//! JSON Schema.
//!
//! Grammar:
//! ```text
//! duration := part+                    e.g. 500ms, 5s, 1m30s, 1.5h, 0s
//! part     := number unit
//! number   := digits ('.' digits)?
//! unit     := "us" | "µs" | "ms" | "s" | "m" | "h"
//! rate     := number '/' per           e.g. 100/s, 0.5/s, 30/m, 1000/h
//! per      := "s" | "m" | "h" | "1s" | "1m" | "1h"
//! size     := digits sunit             e.g. 512B, 64KiB, 1MiB, 2GiB
//! sunit    := "B" | "KiB" | "MiB" | "GiB"
//! ```
//! Whitespace around the text is ignored. A rate is stored as iterations per second, a size as
//! bytes.
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

/// Why a duration or rate did not parse.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("expected a duration like 500ms, 5s or 1m30s, got {0:?}")]
    Duration(String),
    #[error("expected a duration like 500ms, 5s or 1m30s, got {0} (add a unit: ms, s, m or h)")]
    DurationNoUnit(String),
    #[error("expected a rate like 100/s or 30/m, got {0:?}")]
    Rate(String),
    #[error("expected a rate like 100/s or 30/m, got {0} (add a unit: /s, /m or /h)")]
    RateNoUnit(String),
    #[error("expected a size like 64KiB or 1MiB, got {0:?}")]
    Size(String),
    #[error("expected a size like 64KiB or 1MiB, got {0} (add a unit: B, KiB, MiB or GiB)")]
    SizeNoUnit(String),
}

/// A non-negative duration with units, e.g. `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub fn as_std(self) -> StdDuration {
        self.0
    }
}

impl From<Duration> for StdDuration {
    fn from(d: Duration) -> StdDuration {
        d.0
    }
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return None;
    }
    Some((num.parse().ok()?, rest))
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Duration, UnitError> {
        let err = || UnitError::Duration(text.to_string());
        let s = text.trim();
        if s.is_empty() {
            return Err(err());
        }
        if s.parse::<f64>().is_ok() {
            return Err(UnitError::DurationNoUnit(s.to_string()));
        }
        let mut rest = s;
        let mut nanos: f64 = 0.0;
        while !rest.is_empty() {
            let (n, after) = split_number(rest).ok_or_else(err)?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let scale = match unit {
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(err()),
            };
            nanos += n * scale;
            rest = after;
        }
        if !nanos.is_finite() || nanos > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Duration(StdDuration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for Duration {
    /// Canonical form: the largest units that represent the value exactly (`1m30s`, `250ms`).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total % 1_000_000 != 0 {
            return write!(f, "{}us", total as f64 / 1e3);
        }
        let mut ms = total / 1_000_000;
        let h = ms / 3_600_000;
        ms %= 3_600_000;
        let m = ms / 60_000;
        ms %= 60_000;
        let s = ms / 1000;
        ms %= 1000;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if ms > 0 {
            write!(f, "{ms}ms")?;
        }
        Ok(())
    }
}

/// Parse a duration such as `5s` or `1m30s` (for command-line flags).
pub fn parse_duration(text: &str) -> Result<StdDuration, UnitError> {
    text.parse::<Duration>().map(|d| d.0)
}

/// Parse a rate such as `100/s` or `30/m` into iterations per second (for command-line flags).
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    text.parse::<Rate>().map(|r| r.per_second)
}

/// An arrival rate; stored as iterations per second.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate {
    pub per_second: f64,
}

impl Rate {
    pub fn per_second(per_second: f64) -> Rate {
        Rate { per_second }
    }
}

impl FromStr for Rate {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Rate, UnitError> {
        let err = || UnitError::Rate(text.to_string());
        let s = text.trim();
        if s.parse::<f64>().is_ok() {
            return Err(UnitError::RateNoUnit(s.to_string()));
        }
        let (num, per) = s.split_once('/').ok_or_else(err)?;
        let (n, tail) = split_number(num.trim()).ok_or_else(err)?;
        if !tail.is_empty() {
            return Err(err());
        }
        let divisor = match per.trim() {
            "s" | "1s" | "sec" => 1.0,
            "m" | "1m" | "min" => 60.0,
            "h" | "1h" => 3600.0,
            _ => return Err(err()),
        };
        let per_second = n / divisor;
        if !per_second.is_finite() {
            return Err(err());
        }
        Ok(Rate { per_second })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let per_minute = self.per_second * 60.0;
        if self.per_second.fract() != 0.0 && per_minute.fract() == 0.0 {
            write!(f, "{per_minute}/m")
        } else {
            write!(f, "{}/s", self.per_second)
        }
    }
}

/// A size in bytes with a unit, e.g. `64KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Size, UnitError> {
        let err = || UnitError::Size(text.to_string());
        let s = text.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UnitError::SizeNoUnit(s.to_string()));
        }
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(end);
        let n: u64 = num.parse().map_err(|_| err())?;
        let scale: u64 = match unit {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(err()),
        };
        n.checked_mul(scale).map(Size).ok_or_else(err)
    }
}

impl fmt::Display for Size {
    /// Canonical form: the largest unit that represents the value exactly (`64KiB`, `100B`).
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.0;
        for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n > 0 && n % scale == 0 {
                return write!(f, "{}{unit}", n / scale);
            }
        }
        write!(f, "{n}B")
    }
}

/// Parse a size such as `64KiB` into bytes (for command-line flags).
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    text.parse::<Size>().map(|s| s.0)
}

/// Deserialize from a string; numbers get the "add a unit" error.
struct UnitVisitor<T>(&'static str, std::marker::PhantomData<T>);

impl<T> Visitor<'_> for UnitVisitor<T>
where
    T: FromStr<Err = UnitError>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(UnitVisitor("a duration like 5s", Default::default()))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        d.deserialize_any(UnitVisitor("a rate like 100/s", Default::default()))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        d.deserialize_any(UnitVisitor("a size like 64KiB", Default::default()))
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Pattern of a duration in the JSON Schema.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?(us|µs|ms|s|m|h))+\s*$";
/// Pattern of a rate in the JSON Schema.
pub const RATE_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*/\s*(1?s|1?m|1?h|sec|min)\s*$";

/// Pattern of a size in the JSON Schema.
pub const SIZE_PATTERN: &str = r"^\s*[0-9]+(B|KiB|MiB|GiB)\s*$";

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SIZE_PATTERN,
            "description": "A size with a unit: 512B, 64KiB, 1MiB, 2GiB.",
            "examples": ["64KiB", "1MiB"]
        })
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration with units: 500ms, 5s, 1m30s, 1h.",
            "examples": ["500ms", "5s", "1m30s"]
        })
    }
}

impl JsonSchema for Rate {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": RATE_PATTERN,
            "description": "An arrival rate: iterations per second (100/s), minute (30/m) or hour (1000/h).",
            "examples": ["100/s", "30/m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = StdDuration::from_millis;
        let ok = [
            ("500ms", ms(500)),
            ("5s", ms(5000)),
            ("1m30s", ms(90_000)),
            ("1.5s", ms(1500)),
            ("2h", ms(7_200_000)),
            ("0s", ms(0)),
            (" 10s ", ms(10_000)),
            ("1h2m3s4ms", ms(3_723_004)),
            ("250us", StdDuration::from_micros(250)),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<Duration>(), Ok(Duration(want)), "{text}");
        }
        for bad in ["", "5", "fast", "5x", "s", "1.s", "-5s", "5 s", "1m30"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
        assert_eq!(
            "30".parse::<Duration>().unwrap_err().to_string(),
            "expected a duration like 500ms, 5s or 1m30s, got 30 (add a unit: ms, s, m or h)"
        );
    }

    #[test]
    fn duration_display_round_trips() {
        for text in ["0s", "250ms", "5s", "1m30s", "2h", "1h1ms", "1500us"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d, "{text}");
        }
        assert_eq!("90s".parse::<Duration>().unwrap().to_string(), "1m30s");
    }

    #[test]
    fn rates() {
        let ok = [
            ("100/s", 100.0),
            ("30/m", 0.5),
            ("3600/h", 1.0),
            ("0.5/s", 0.5),
            ("10/1s", 10.0),
            ("0/s", 0.0),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<Rate>().unwrap().per_second, want, "{text}");
        }
        for bad in ["fast", "100", "100/x", "/s", "-1/s", "1e3/s", "100/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        assert_eq!(
            "fast".parse::<Rate>().unwrap_err().to_string(),
            "expected a rate like 100/s or 30/m, got \"fast\""
        );
        assert_eq!(Rate::per_second(0.5).to_string(), "30/m");
        assert_eq!(Rate::per_second(100.0).to_string(), "100/s");
        assert_eq!(parse_rate("30/m"), Ok(0.5));
        assert_eq!(parse_duration("1m30s"), Ok(StdDuration::from_secs(90)));
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512B", 512),
            ("64KiB", 64 << 10),
            (" 1MiB ", 1 << 20),
            ("2GiB", 2 << 30),
            ("0B", 0),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<Size>(), Ok(Size(want)), "{text}");
        }
        for bad in [
            "",
            "64",
            "64kb",
            "1.5MiB",
            "-1B",
            "MiB",
            "1 MiB",
            "99999999999999GiB",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        assert_eq!(
            "1024".parse::<Size>().unwrap_err().to_string(),
            "expected a size like 64KiB or 1MiB, got 1024 (add a unit: B, KiB, MiB or GiB)"
        );
        for text in ["0B", "100B", "64KiB", "1536KiB", "1MiB", "3GiB"] {
            assert_eq!(text.parse::<Size>().unwrap().to_string(), text);
        }
        assert_eq!(parse_size("64KiB"), Ok(65536));
    }
}
