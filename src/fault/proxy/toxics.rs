//! The toxics of one direction of one connection: which apply (rolled once against their
//! toxicity), their state (bytes passed, a reset armed, bandwidth pacing), and how a chunk
//! goes through them. The pure parts (latency draw, slicer cuts) are unit-tested here.
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::link::{Chunk, End};
use super::{ToxicId, ToxicSet};
use crate::spec::fault::{ToxicKind, ToxicStream};

struct Entry {
    id: ToxicId,
    kind: ToxicKind,
    applies: bool,
    /// When this connection got the toxic (timeout counts from here).
    since: Instant,
    /// limit_data: bytes passed so far.
    passed: u64,
    /// reset_peer: when the reset is due, once data came.
    reset_at: Option<Instant>,
    /// bandwidth: when the previous piece's transmission time ends.
    paced_until: Option<Instant>,
}

/// The toxics in effect on one direction of one connection.
pub(super) struct Active {
    stream: ToxicStream,
    entries: Vec<Entry>,
}

impl Active {
    pub(super) fn new(stream: ToxicStream) -> Active {
        Active {
            stream,
            entries: Vec::new(),
        }
    }

    /// Takes the proxy's current toxics: keeps the state of toxics already seen, rolls the
    /// toxicity of new ones.
    pub(super) fn reload(&mut self, set: &ToxicSet, now: Instant) {
        let mut old = std::mem::take(&mut self.entries);
        for (id, t) in &set.toxics {
            if t.stream != self.stream {
                continue;
            }
            if let Some(i) = old.iter().position(|e| e.id == *id) {
                self.entries.push(old.swap_remove(i));
                continue;
            }
            self.entries.push(Entry {
                id: *id,
                kind: t.kind,
                applies: t.toxicity >= 1.0 || rand::rng().random::<f64>() < t.toxicity,
                since: now,
                passed: 0,
                reset_at: None,
                paced_until: None,
            });
        }
    }

    fn applying(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.applies)
    }

    /// The next time a toxic ends the connection by itself: a timeout (close) or an armed
    /// reset_peer (reset).
    pub(super) fn deadline(&self) -> Option<(Instant, End)> {
        self.applying()
            .filter_map(|e| match e.kind {
                ToxicKind::Timeout { timeout } if !timeout.is_zero() => {
                    Some((e.since + timeout, End::Close))
                }
                ToxicKind::ResetPeer { .. } => e.reset_at.map(|at| (at, End::Reset)),
                _ => None,
            })
            .min_by_key(|d| d.0)
    }

    /// How long the end of the stream is held back (slow_close), if at all.
    pub(super) fn slow_close(&self) -> Option<Duration> {
        self.applying()
            .filter_map(|e| match e.kind {
                ToxicKind::SlowClose { delay } => Some(delay),
                _ => None,
            })
            .max()
    }

    /// Passes `chunk` through the toxics to `w`. Ok(Some(end)) when a toxic ends the
    /// connection (limit_data reached).
    pub(super) async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        chunk: Chunk,
        w: &mut W,
    ) -> std::io::Result<Option<End>> {
        if self.entries.iter().all(|e| !e.applies) {
            w.write_all(&chunk.data).await?;
            return Ok(None);
        }
        // timeout: data is dropped on the floor.
        if self
            .applying()
            .any(|e| matches!(e.kind, ToxicKind::Timeout { .. }))
        {
            return Ok(None);
        }
        // reset_peer: the first data arms the reset; data is dropped.
        let now = Instant::now();
        let mut dropped = false;
        for e in self.entries.iter_mut().filter(|e| e.applies) {
            if let ToxicKind::ResetPeer { timeout } = e.kind {
                e.reset_at.get_or_insert(now + timeout);
                dropped = true;
            }
        }
        if dropped {
            return Ok(None);
        }
        // latency: from the time the chunk was read.
        let mut delay = Duration::ZERO;
        for e in self.applying() {
            if let ToxicKind::Latency { latency, jitter } = e.kind {
                delay += latency_draw(latency, jitter, &mut rand::rng());
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep_until((chunk.at + delay).into()).await;
        }
        // limit_data: cut what passes the limit.
        let mut data = chunk.data;
        let mut limit_reached = false;
        for e in self.entries.iter_mut().filter(|e| e.applies) {
            if let ToxicKind::LimitData { bytes } = e.kind {
                let left = bytes.saturating_sub(e.passed);
                if (data.len() as u64) >= left {
                    data.truncate(left as usize);
                    limit_reached = true;
                }
            }
        }
        let pieces = match self.applying().find_map(|e| match e.kind {
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => Some((average_size, size_variation, delay)),
            _ => None,
        }) {
            Some((avg, var, d)) => (slice(data.len(), avg, var, &mut rand::rng()), d),
            None => (vec![(0, data.len())], Duration::ZERO),
        };
        let rate = self.applying().find_map(|e| match e.kind {
            ToxicKind::Bandwidth { rate_kbps } if rate_kbps > 0 => Some(rate_kbps),
            _ => None,
        });
        for (i, (a, b)) in pieces.0.iter().copied().enumerate() {
            if i > 0 && !pieces.1.is_zero() {
                tokio::time::sleep(pieces.1).await;
            }
            self.write_paced(data.slice(a..b), rate, w).await?;
        }
        let n = data.len() as u64;
        for e in self.entries.iter_mut().filter(|e| e.applies) {
            if let ToxicKind::LimitData { .. } = e.kind {
                e.passed += n;
            }
        }
        Ok(limit_reached.then_some(End::Close))
    }

    /// Writes `data`, at most `rate_kbps` KB/s when given: pieces of at most 100 ms of
    /// data, each sent once its transmission time has passed (toxiproxy's bandwidth).
    async fn write_paced<W: AsyncWrite + Unpin>(
        &mut self,
        data: Bytes,
        rate_kbps: Option<u64>,
        w: &mut W,
    ) -> std::io::Result<()> {
        let Some(rate) = rate_kbps else {
            return w.write_all(&data).await;
        };
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.applies && matches!(e.kind, ToxicKind::Bandwidth { .. }));
        let mut paced = entry.as_ref().and_then(|e| e.paced_until);
        let max_piece = (rate * 100).max(1) as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let piece = rest.split_to(rest.len().min(max_piece));
            let start = paced.map_or_else(Instant::now, |p| p.max(Instant::now()));
            let due = start + transmission_time(piece.len(), rate);
            tokio::time::sleep_until(due.into()).await;
            w.write_all(&piece).await?;
            paced = Some(due);
        }
        if let Some(e) = entry {
            e.paced_until = paced;
        }
        Ok(())
    }
}

/// Time to send `len` bytes at `rate_kbps` KB/s (1 KB = 1000 bytes: toxiproxy's
/// `len * 1ms / rate`).
pub(super) fn transmission_time(len: usize, rate_kbps: u64) -> Duration {
    Duration::from_nanos((len as u64).saturating_mul(1_000_000) / rate_kbps.max(1))
}

/// `latency` ± a uniform draw of `jitter` (toxiproxy: latency + rand(2 jitter) - jitter),
/// never below zero.
pub(super) fn latency_draw(latency: Duration, jitter: Duration, rng: &mut impl Rng) -> Duration {
    if jitter.is_zero() {
        return latency;
    }
    let j = jitter.as_nanos() as i128;
    let d = latency.as_nanos() as i128 + rng.random_range(-j..j);
    Duration::from_nanos(d.max(0) as u64)
}

/// Cuts `0..len` into pieces of about `avg` ± `var` bytes: toxiproxy's slicer halves a
/// range (± `var`) until it is within `var` of `avg`, so pieces vary evenly.
pub(super) fn slice(len: usize, avg: usize, var: usize, rng: &mut impl Rng) -> Vec<(usize, usize)> {
    let avg = avg.max(1);
    let var = var.min(avg - 1);
    let mut out = Vec::new();
    let mut todo = vec![(0usize, len)];
    while let Some((start, end)) = todo.pop() {
        let size = end - start;
        if size <= avg + var || size < 2 {
            if size > 0 {
                out.push((start, end));
            }
            continue;
        }
        let shift = if var == 0 {
            0
        } else {
            rng.random_range(-(var as i64)..var as i64)
        };
        let mid = (start as i64 + (size / 2) as i64 + shift).clamp(start as i64 + 1, end as i64 - 1)
            as usize;
        // Right first: the stack pops the left half next, so pieces come out in order.
        todo.push((mid, end));
        todo.push((start, mid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicer_covers_the_chunk_in_order_with_pieces_near_the_average() {
        let mut rng = rand::rng();
        for len in [0usize, 1, 10, 100, 1000, 65536] {
            let pieces = slice(len, 100, 20, &mut rng);
            let mut at = 0;
            for (a, b) in &pieces {
                assert_eq!(*a, at, "contiguous");
                assert!(b > a);
                at = *b;
            }
            assert_eq!(at, len);
            if len > 200 {
                assert!(
                    pieces.iter().all(|(a, b)| b - a <= 120 && b - a >= 30),
                    "{pieces:?}"
                );
            }
        }
    }

    #[test]
    fn latency_draw_stays_within_jitter() {
        let mut rng = rand::rng();
        let (l, j) = (Duration::from_millis(100), Duration::from_millis(20));
        for _ in 0..1000 {
            let d = latency_draw(l, j, &mut rng);
            assert!(d >= Duration::from_millis(80) && d < Duration::from_millis(120));
        }
        assert_eq!(latency_draw(l, Duration::ZERO, &mut rng), l);
        let d = latency_draw(Duration::from_millis(1), Duration::from_millis(5), &mut rng);
        assert!(d < Duration::from_millis(6));
    }

    #[test]
    fn transmission_time_is_toxiproxys_arithmetic() {
        // 1000 bytes at 1 KB/s: one second.
        assert_eq!(transmission_time(1000, 1), Duration::from_secs(1));
        assert_eq!(transmission_time(100_000, 1000), Duration::from_millis(100));
    }
}
