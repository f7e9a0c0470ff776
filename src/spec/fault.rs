//! Faults, lowered (`faults:` of a plan), and the network faults: the toxics a TCP proxy applies to the traffic between the
//! reference stack's gateways and a dependency (toxiproxy's set, with its semantics).
//!
//! They live here because plans name them (a fault's `toxic:`) and the lowered spec must not
//! import the proxy (`crate::fault::proxy`) that carries them out.
use std::fmt;
use std::time::Duration;

use super::stack::{Component, StackOp};

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ToxicStream {
    /// Client (the gateway) -> dependency.
    Upstream,
    /// Dependency -> client; toxiproxy's default.
    #[default]
    Downstream,
}

impl ToxicStream {
    pub fn as_str(&self) -> &'static str {
        match self {
            ToxicStream::Upstream => "upstream",
            ToxicStream::Downstream => "downstream",
        }
    }
}

impl fmt::Display for ToxicStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a toxic does to the bytes of its stream (toxiproxy's toxics; units as toxiproxy's,
/// durations typed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ToxicKind {
    /// Each chunk is delivered `latency` ± a uniform `jitter` after it was read.
    Latency { latency: Duration, jitter: Duration },
    /// At most `rate_kbps` KB/s (1 KB = 1000 bytes, as toxiproxy's arithmetic).
    Bandwidth { rate_kbps: u64 },
    /// The stream's end (FIN) is held back `delay` after the source closed.
    SlowClose { delay: Duration },
    /// Data is dropped; the connection is closed after `timeout` (zero: held open forever,
    /// until the toxic is removed).
    Timeout { timeout: Duration },
    /// On the first data after the toxic is active, wait `timeout`, then reset the
    /// connection (TCP RST to both ends, unsent data discarded).
    ResetPeer { timeout: Duration },
    /// Chunks are cut into pieces of about `average_size` ± `size_variation` bytes, `delay`
    /// apart.
    Slicer {
        average_size: usize,
        size_variation: usize,
        delay: Duration,
    },
    /// The connection is closed once `bytes` have passed in this stream.
    LimitData { bytes: u64 },
}

impl ToxicKind {
    /// The toxic's name, as toxiproxy and plans spell it.
    pub fn name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
        }
    }
}

/// One toxic: what, on which stream, on which share of the connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Toxic {
    pub kind: ToxicKind,
    pub stream: ToxicStream,
    /// Probability (0..=1) that the toxic applies to a given connection (decided once per
    /// connection, as toxiproxy does).
    pub toxicity: f64,
}

impl Toxic {
    /// A toxic on the downstream, applying to every connection (toxiproxy's defaults).
    pub fn new(kind: ToxicKind) -> Toxic {
        Toxic {
            kind,
            stream: ToxicStream::Downstream,
            toxicity: 1.0,
        }
    }

    pub fn on(mut self, stream: ToxicStream) -> Toxic {
        self.stream = stream;
        self
    }

    pub fn toxicity(mut self, toxicity: f64) -> Toxic {
        self.toxicity = toxicity;
        self
    }
}

impl fmt::Display for Toxic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match &self.kind {
            ToxicKind::Latency { latency, jitter } => {
                write!(f, "latency {}ms ±{}ms", ms(latency), ms(jitter))?
            }
            ToxicKind::Bandwidth { rate_kbps } => write!(f, "bandwidth {rate_kbps}KB/s")?,
            ToxicKind::SlowClose { delay } => write!(f, "slow_close {}ms", ms(delay))?,
            ToxicKind::Timeout { timeout } => write!(f, "timeout {}ms", ms(timeout))?,
            ToxicKind::ResetPeer { timeout } => write!(f, "reset_peer {}ms", ms(timeout))?,
            ToxicKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => write!(
                f,
                "slicer {average_size}±{size_variation}B {}us",
                delay.as_micros()
            )?,
            ToxicKind::LimitData { bytes } => write!(f, "limit_data {bytes}B")?,
        }
        write!(f, " {}", self.stream)?;
        if self.toxicity < 1.0 {
            write!(f, " toxicity {}", self.toxicity)?;
        }
        Ok(())
    }
}

/// A network fault on a proxied dependency: toxics, or the proxy down (connections refused,
/// open ones reset), toxiproxy's `enabled: false`.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkFault {
    Toxics(Vec<Toxic>),
    Down,
}

/// What a fault does, lowered. Drills add their actions here (a region is a
/// [`Component::Region`] of a `Stack` action): the controller and the failover report take
/// any action.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// A stack operation on a component: kill, stop or pause (its recovery is start, start
    /// or resume).
    Stack { component: Component, op: StackOp },
    /// A network fault on the connections from the gateways to a dependency.
    Network {
        component: Component,
        fault: NetworkFault,
    },
    /// A command run with `sh -c` (real environments: `kubectl delete pod ...`), confirmed
    /// by `check` (exit 0 = the fault took effect) and undone by `recover`.
    Exec(ExecFault),
    /// A backup of a database component (pg_dump, custom format, into the stack's work
    /// dir): not a fault by itself, the point a later `Restore` goes back to.
    Backup { component: Component },
    /// Restores the component's latest backup over its live database (pg_restore): every
    /// write acknowledged after that backup is lost, which the write ledger reports.
    Restore { component: Component },
    /// A database failover (`postgres`): the primary is killed (SIGKILL), its streaming
    /// replica promoted, and the gateways repointed to it; the injection is its own
    /// recovery (nothing to undo).
    Failover { component: Component },
}

impl FaultAction {
    /// `kill`, `stop`, `pause`, `toxic`, `exec`, `backup`, `restore`.
    pub fn name(&self) -> &'static str {
        match self {
            FaultAction::Stack { op, .. } => op.as_str(),
            FaultAction::Network { .. } => "toxic",
            FaultAction::Exec(_) => "exec",
            FaultAction::Backup { .. } => "backup",
            FaultAction::Restore { .. } => "restore",
            FaultAction::Failover { .. } => "failover",
        }
    }

    /// The component acted on, when the stack's.
    pub fn component(&self) -> Option<Component> {
        match self {
            FaultAction::Stack { component, .. }
            | FaultAction::Network { component, .. }
            | FaultAction::Backup { component }
            | FaultAction::Restore { component }
            | FaultAction::Failover { component } => Some(*component),
            FaultAction::Exec(_) => None,
        }
    }

    /// The stack operation that undoes a stack fault (kill / stop -> start, pause -> resume).
    pub fn recovery_op(&self) -> Option<StackOp> {
        match self {
            FaultAction::Stack { op, .. } => Some(match op {
                StackOp::Pause => StackOp::Resume,
                _ => StackOp::Start,
            }),
            _ => None,
        }
    }
}

/// An exec fault's commands.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecFault {
    pub command: String,
    /// Each command is killed (its process group) past this.
    pub timeout: Duration,
    /// Confirms the fault took effect (exit 0); retried until `check_within` has passed.
    /// An unconfirmed fault fails the drill instead of reporting a false recovery.
    pub check: Option<String>,
    pub check_within: Duration,
    /// Undoes the fault after the fault's `hold` (and when the run ends first).
    pub recover: Option<String>,
}

/// When the users count as served again after a fault: `sustain` consecutive seconds in
/// which requests were answered and at most `max_error_rate` of them failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryRule {
    pub sustain: Duration,
    pub max_error_rate: f64,
}

impl Default for RecoveryRule {
    fn default() -> Self {
        RecoveryRule {
            sustain: Duration::from_secs(3),
            max_error_rate: 0.01,
        }
    }
}

/// A condition that injects a fault when it holds (checked once a second, from the
/// fault's `at` on), instead of at a fixed time.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultCondition {
    /// The probe is failing (a `probe_failure` event without a recovery since).
    ProbeFailing(String),
    /// The judged scenarios' error rate over the last finalized second is above this
    /// fraction (with at least one request in it).
    ErrorRateAbove(f64),
}

impl fmt::Display for FaultCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultCondition::ProbeFailing(p) => write!(f, "probe {p} failing"),
            FaultCondition::ErrorRateAbove(r) => write!(f, "error rate above {}%", r * 100.0),
        }
    }
}

/// One entry of the plan's `faults:`, lowered.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub name: String,
    /// Run-clock time of the first injection; with `when`, the earliest time it may fire.
    pub at: Duration,
    /// Inject when this holds (from `at` on) rather than at `at`.
    pub when: Option<FaultCondition>,
    /// Time between injections (with `times` > 1); with `when`, the least time between
    /// them.
    pub every: Option<Duration>,
    /// Number of injections (>= 1).
    pub times: u32,
    pub action: FaultAction,
    /// How long the fault is held before its recovery (restart_after / resume_after /
    /// duration); None: until the run ends.
    pub hold: Option<Duration>,
    /// The RTO (as users saw it) each repetition must stay under (strictly).
    pub max_rto: Duration,
    pub recovery: RecoveryRule,
    /// Scenarios whose requests measure the failover (empty: every scenario).
    pub scenarios: Vec<String>,
    /// `expect: { lost_writes, rpo }`: the writes acknowledged before each repetition are
    /// read back after it recovered and judged against these bounds (None: the fault is
    /// judged on its RTO only; the run-wide ledger check still applies).
    pub ledger: Option<FaultLedgerExpect>,
}

/// A fault's bounds on the writes it may lose (the write ledger, per fault).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultLedgerExpect {
    /// Lost acknowledged writes allowed (summed over the repetitions).
    pub max_lost: u64,
    /// The lost writes' time span allowed (the worst repetition).
    pub max_rpo: Duration,
}

impl FaultSpec {
    /// Run-clock time of repetition `rep` (0-based).
    pub fn at_of(&self, rep: u32) -> Duration {
        self.at + self.every.unwrap_or_default() * rep
    }
}
