//! The segment recorder: keeps every second's samples of a segment run (`--segment i/N`),
//! encoded, so its stored results can be merged and judged over the union of the segments
//! (`loadgate merge`). A segment judges its own share as any run does; only the union can
//! say whether a windowed threshold or an SLO burn held, and the merge replays these slices
//! to find out.
//!
//! A controller rather than a change to the run clock: the slices it keeps are exactly the
//! ones every judge of the run sees, tick by tick, last tick included.
use std::sync::{Arc, Mutex};

use crate::metrics::slices::{EncodedSlice, SliceCodecError};

use super::{Action, Conclusion, Controller, End, Tick};

/// What the recorder kept: every slice in order, or the first encoding failure.
pub type Kept = Arc<Mutex<Result<Vec<EncodedSlice>, KeepError>>>;

/// A second the recorder could not keep: the merge cannot replay the segment then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding second {second}: {source}")]
pub struct KeepError {
    pub second: u64,
    #[source]
    pub source: SliceCodecError,
}

/// Keeps every [`crate::metrics::SecondSlice`] of the run, encoded, in [`SliceRecorder::kept`].
pub struct SliceRecorder {
    kept: Kept,
}

impl SliceRecorder {
    pub fn new() -> SliceRecorder {
        SliceRecorder {
            kept: Arc::new(Mutex::new(Ok(Vec::new()))),
        }
    }

    /// The slices, shared: read them when the run is over.
    pub fn kept(&self) -> Kept {
        self.kept.clone()
    }
}

impl Default for SliceRecorder {
    fn default() -> Self {
        SliceRecorder::new()
    }
}

impl Controller for SliceRecorder {
    fn name(&self) -> &'static str {
        "segment"
    }

    fn on_tick(&mut self, tick: &Tick<'_>) -> Vec<Action> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(slices) = kept.as_mut() {
            for s in tick.seconds {
                match EncodedSlice::encode(s) {
                    Ok(e) => slices.push(e),
                    Err(e) => {
                        tracing::warn!(error = %e, second = s.second, "encoding a second's slice");
                        *kept = Err(KeepError {
                            second: s.second,
                            source: e,
                        });
                        break;
                    }
                }
            }
        }
        Vec::new()
    }

    fn finish(&mut self, _end: &End<'_>) -> Conclusion {
        Conclusion::default()
    }
}
