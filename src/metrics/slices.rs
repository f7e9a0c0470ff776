//! Every second's samples of a segment, kept exactly so `loadgate merge` can replay them.
//!
//! A run judges its windowed thresholds and SLO burn rates on [`SecondSlice`]s as they come
//! (every series' samples of one second). A segment of a distributed run (`--segment i/N`)
//! cannot judge those over the union, so it keeps its slices and stores them beside its other
//! results; the merge adds the segments' slices second by second (histograms and counters add
//! exactly) and feeds the union to the same judges.
//!
//! In memory a slice is kept encoded ([`EncodedSlice`]: each histogram as its HdrHistogram
//! V2 + DEFLATE encoding, a few hundred bytes), so an hour-long segment keeps megabytes, not
//! the tens of kilobytes a live histogram takes. On disk, in the results directory:
//!
//! - `slices.hlog`: a standard HdrHistogram interval log (as `histograms.hlog`, values in µs);
//!   the entry for series `J` of second `S` starts at `S` s, lasts 1 s and is tagged
//!   `slice.duration.J` (intended send → last byte) or `slice.service.J` (actual send → last
//!   byte);
//! - `slices.json`: per second, the dropped iterations per source and every series' key and
//!   counters, in the order `J` counts them. `format` is 1.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::store::{variant_name, variant_of, StoreError};
use super::{ErrorKind, SecondSlice, SeriesKey, SeriesStats, ValueSum};

/// The slices' histogram log in the results directory.
pub const SLICES_HLOG: &str = "slices.hlog";
/// The slices' counters in the results directory.
pub const SLICES_JSON: &str = "slices.json";
/// `format` of slices.json.
pub const FORMAT: u32 = 1;

/// One series of one second, its histograms encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSeries {
    pub key: SeriesKey,
    pub requests: u64,
    pub failed: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    pub values: Vec<ValueSum>,
    /// `duration`, HdrHistogram V2 + DEFLATE.
    pub duration: Vec<u8>,
    /// `service`, HdrHistogram V2 + DEFLATE.
    pub service: Vec<u8>,
}

/// A [`SecondSlice`] with its histograms encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedSlice {
    pub second: u64,
    pub dropped: Vec<u64>,
    pub series: Vec<EncodedSeries>,
}

/// A second's histogram that could not be encoded or decoded (the hdrhistogram crate's
/// error, as it describes itself: its error types implement neither `Display` nor `Clone`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceCodecError {
    #[error("encoding a histogram (V2 + DEFLATE): {0}")]
    Encode(String),
    #[error("decoding a histogram (V2 + DEFLATE), the file is damaged or not loadgate's: {0}")]
    Decode(String),
}

fn encode(h: &Histogram<u64>) -> Result<Vec<u8>, SliceCodecError> {
    let mut out = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .map_err(|e| SliceCodecError::Encode(format!("{e:?}")))?;
    Ok(out)
}

fn decode(de: &mut Deserializer, bytes: &[u8]) -> Result<Histogram<u64>, SliceCodecError> {
    let mut h: Histogram<u64> = de
        .deserialize(&mut &bytes[..])
        .map_err(|e| SliceCodecError::Decode(format!("{e:?}")))?;
    h.auto(true);
    Ok(h)
}

impl EncodedSlice {
    /// Encode a slice (exact: [`EncodedSlice::decode`] gives it back).
    pub fn encode(slice: &SecondSlice) -> Result<EncodedSlice, SliceCodecError> {
        let mut series = Vec::with_capacity(slice.series.len());
        for (key, s) in &slice.series {
            series.push(EncodedSeries {
                key: *key,
                requests: s.requests,
                failed: s.failed,
                checks_passed: s.checks_passed,
                checks_failed: s.checks_failed,
                values: s.values.clone(),
                duration: encode(&s.duration)?,
                service: encode(&s.service)?,
            });
        }
        Ok(EncodedSlice {
            second: slice.second,
            dropped: slice.dropped.clone(),
            series,
        })
    }

    /// The slice, its histograms decoded.
    pub fn decode(&self) -> Result<SecondSlice, SliceCodecError> {
        let mut de = Deserializer::new();
        let mut series = Vec::with_capacity(self.series.len());
        for s in &self.series {
            series.push((
                s.key,
                SeriesStats {
                    duration: decode(&mut de, &s.duration)?,
                    service: decode(&mut de, &s.service)?,
                    requests: s.requests,
                    failed: s.failed,
                    checks_passed: s.checks_passed,
                    checks_failed: s.checks_failed,
                    values: s.values.clone(),
                },
            ));
        }
        Ok(SecondSlice {
            second: self.second,
            series,
            dropped: self.dropped.clone(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct SlicesDoc {
    format: u32,
    slices: Vec<SliceDoc>,
}

#[derive(Serialize, Deserialize)]
struct SliceDoc {
    second: u64,
    dropped: Vec<u64>,
    series: Vec<SeriesDoc>,
}

#[derive(Serialize, Deserialize)]
struct SeriesDoc {
    scenario: u16,
    request: u16,
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    variant: String,
    requests: u64,
    failed: u64,
    checks_passed: u64,
    checks_failed: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<(f64, u64)>,
}

/// Write `slices` into `dir` (created if needed): [`SLICES_HLOG`] and [`SLICES_JSON`].
/// `started`: the run's wall-clock start (the log's base time).
pub fn write(
    dir: &Path,
    slices: &[EncodedSlice],
    started: SystemTime,
) -> Result<Vec<PathBuf>, StoreError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let hlog = dir.join(SLICES_HLOG);
    let bad = |reason: String| StoreError::Format {
        path: hlog.clone(),
        reason,
    };
    let mut log = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("loadgate per-second series histograms, microseconds; see slices.json")
            .with_max_value_divisor(1000.0)
            .with_start_time(started)
            .with_base_time(started)
            .begin_log_with(&mut log, &mut ser)
            .map_err(io_err(&hlog))?;
        let mut de = Deserializer::new();
        for slice in slices {
            let at = Duration::from_secs(slice.second);
            for (j, s) in slice.series.iter().enumerate() {
                for (what, bytes) in [("duration", &s.duration), ("service", &s.service)] {
                    let tag = format!("slice.{what}.{j}");
                    let h = decode(&mut de, bytes)
                        .map_err(|e| bad(format!("{tag} at {} s: {e}", slice.second)))?;
                    w.write_histogram(&h, at, Duration::from_secs(1), Tag::new(&tag))
                        .map_err(|e| bad(format!("encoding {tag}: {e:?}")))?;
                }
            }
        }
    }
    let doc = SlicesDoc {
        format: FORMAT,
        slices: slices
            .iter()
            .map(|s| SliceDoc {
                second: s.second,
                dropped: s.dropped.clone(),
                series: s
                    .series
                    .iter()
                    .map(|e| SeriesDoc {
                        scenario: e.key.scenario,
                        request: e.key.request,
                        status: e.key.status,
                        error: e.key.error.map(|k| k.as_str().to_string()),
                        variant: variant_name(e.key.variant).into(),
                        requests: e.requests,
                        failed: e.failed,
                        checks_passed: e.checks_passed,
                        checks_failed: e.checks_failed,
                        values: e.values.iter().map(|v| (v.sum, v.n)).collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    let json_path = dir.join(SLICES_JSON);
    let json = serde_json::to_vec(&doc).map_err(|e| StoreError::Format {
        path: json_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&hlog, &log).map_err(io_err(&hlog))?;
    std::fs::write(&json_path, json).map_err(io_err(&json_path))?;
    Ok(vec![hlog, json_path])
}

/// Whether `dir` holds stored slices.
pub fn present(dir: &Path) -> bool {
    dir.join(SLICES_JSON).is_file()
}

/// Read the slices [`write`] stored in `dir`, in order of their seconds.
pub fn read(dir: &Path) -> Result<Vec<EncodedSlice>, StoreError> {
    let json_path = dir.join(SLICES_JSON);
    let hlog = dir.join(SLICES_HLOG);
    let bad = |path: &Path, reason: String| StoreError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let doc: SlicesDoc =
        serde_json::from_slice(&read(&json_path)?).map_err(|e| bad(&json_path, e.to_string()))?;
    if doc.format != FORMAT {
        return Err(bad(
            &json_path,
            format!("format {} (this loadgate reads {FORMAT})", doc.format),
        ));
    }
    // (second, series index) -> (duration, service), still encoded.
    type Pair = (Option<Vec<u8>>, Option<Vec<u8>>);
    let mut hists: BTreeMap<(u64, usize), Pair> = BTreeMap::new();
    let log = read(&hlog)?;
    for entry in IntervalLogIterator::new(&log) {
        let entry = entry.map_err(|e| bad(&hlog, format!("{e:?}")))?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let tag = i.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let (what, j) = tag
            .strip_prefix("slice.")
            .and_then(|t| t.split_once('.'))
            .and_then(|(w, j)| Some((w.to_string(), j.parse::<usize>().ok()?)))
            .ok_or_else(|| bad(&hlog, format!("unexpected tag {tag:?}")))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .map_err(|e| bad(&hlog, format!("{tag}: {e}")))?;
        let slot = hists.entry((i.start_timestamp().as_secs(), j)).or_default();
        match what.as_str() {
            "duration" => slot.0 = Some(raw),
            "service" => slot.1 = Some(raw),
            _ => return Err(bad(&hlog, format!("unexpected tag {tag:?}"))),
        }
    }
    let kind_of = |s: &str| {
        ErrorKind::parse(s).ok_or_else(|| bad(&json_path, format!("unknown error kind {s:?}")))
    };
    let mut out = Vec::with_capacity(doc.slices.len());
    for s in doc.slices {
        let mut series = Vec::with_capacity(s.series.len());
        for (j, e) in s.series.into_iter().enumerate() {
            let key = SeriesKey {
                scenario: e.scenario,
                request: e.request,
                status: e.status,
                error: e.error.as_deref().map(kind_of).transpose()?,
                variant: variant_of(&e.variant)
                    .ok_or_else(|| bad(&json_path, format!("unknown variant {:?}", e.variant)))?,
            };
            let (duration, service) = match hists.remove(&(s.second, j)) {
                Some((Some(d), Some(v))) => (d, v),
                _ => {
                    return Err(bad(
                        &hlog,
                        format!(
                            "no slice.duration.{j} / slice.service.{j} histogram at {} s",
                            s.second
                        ),
                    ))
                }
            };
            series.push(EncodedSeries {
                key,
                requests: e.requests,
                failed: e.failed,
                checks_passed: e.checks_passed,
                checks_failed: e.checks_failed,
                values: e
                    .values
                    .into_iter()
                    .map(|(sum, n)| ValueSum { sum, n })
                    .collect(),
                duration,
                service,
            });
        }
        out.push(EncodedSlice {
            second: s.second,
            dropped: s.dropped,
            series,
        });
    }
    out.sort_by_key(|s| s.second);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Variant;

    #[test]
    fn slices_round_trip_exactly() {
        let key = SeriesKey {
            scenario: 1,
            request: 0,
            status: 503,
            error: Some(ErrorKind::Status5xx),
            variant: Variant::None,
        };
        let mut s = SeriesStats::default();
        for v in [3u64, 900, 12_345, 7_000_000] {
            s.duration.record_n(v, v % 5 + 1).unwrap();
            s.service.record(v / 3 + 1).unwrap();
        }
        s.requests = 4;
        s.failed = 4;
        s.checks_failed = 2;
        s.values = vec![ValueSum { sum: 0.1, n: 3 }];
        let slices: Vec<EncodedSlice> = [(0u64, vec![]), (2, vec![(key, s.clone())])]
            .into_iter()
            .map(|(second, series)| {
                EncodedSlice::encode(&SecondSlice {
                    second,
                    series,
                    dropped: vec![0, 7],
                })
                .unwrap()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &slices, SystemTime::UNIX_EPOCH).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back.len(), 2);
        let d = back[1].decode().unwrap();
        assert_eq!(d.second, 2);
        assert_eq!(d.dropped, vec![0, 7]);
        assert_eq!(d.series[0].0, key);
        assert_eq!(d.series[0].1.duration, s.duration);
        assert_eq!(d.series[0].1.service, s.service);
        assert_eq!(d.series[0].1.values, s.values);
        assert_eq!(
            (d.series[0].1.requests, d.series[0].1.checks_failed),
            (4, 2)
        );
        let text = std::fs::read_to_string(dir.path().join(SLICES_HLOG)).unwrap();
        assert!(text.contains("Tag=slice.duration.0,2.000,1.000,"), "{text}");
    }
}
