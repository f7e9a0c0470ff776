//! The plan's `faults:` section, field for field; see the parent module for the conventions
//! (every field optional here, required ones checked in validation).

use super::*;

/// `faults.NAME:` — a fault injected while the load runs, and the failover it must survive.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Run-clock time of the (first) injection, e.g. `20s`; with `when`, the earliest time
    /// the condition is looked at (default 0s). One of `at` and `when` is required.
    pub at: Option<Duration>,
    /// Inject when a condition holds instead of at a fixed time (checked once a second).
    pub when: Option<WhenDef>,
    /// Time between repetitions (required with `times` > 1).
    pub every: Option<Duration>,
    /// Number of injections (default 1).
    #[schemars(range(min = 1))]
    pub times: Option<u32>,
    /// What is done: `kill`, `stop`, `pause` (a stack component, or every gateway of a
    /// region), `toxic` (the network to a dependency), `exec` (a command), `backup` /
    /// `restore` (pg_dump / pg_restore of `postgres`), `failover` (postgres: kill the primary,
    /// promote its replica, repoint the gateways).
    #[schemars(required)]
    pub action: Option<FaultActionDef>,
    /// The stack component: `redis`, `postgres`, `postgres-replica`, `gateway[N]`, `edge`,
    /// `region[primary]`, `region[secondary]` (kill / stop / pause); `redis` or `postgres`
    /// (toxic); `postgres` (backup / restore / failover).
    pub component: Option<String>,
    /// Shorthand for `component: region[primary]` / `region[secondary]` (every gateway of
    /// the region; needs `stack.reference.regions: 2`). Not with `component`.
    pub region: Option<RegionDef>,
    /// kill / stop: start the component again this long after the injection (default: it
    /// stays down).
    pub restart_after: Option<Duration>,
    /// pause: resume it this long after the injection (default: paused until the end).
    pub resume_after: Option<Duration>,
    /// toxic / exec: how long the fault is held before it is undone (default: until the end).
    pub duration: Option<Duration>,
    /// toxic: which toxic (toxiproxy's), on which stream, with which toxicity.
    pub toxic: Option<ToxicDef>,
    /// exec: the command, its check and its recovery.
    pub exec: Option<ExecDef>,
    /// What the drill must see (default `rto: "<15s"`).
    pub expect: Option<FaultExpect>,
    /// When users count as served again (default 3 s in a row at most 1% errors).
    pub recovery: Option<RecoveryDef>,
    /// Scenarios whose requests measure the failover (default: every scenario).
    pub scenarios: Option<Vec<String>>,
}

/// `when:` — exactly one condition.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenDef {
    /// A probe of the plan is failing (its latest sample failed).
    pub probe_failing: Option<String>,
    /// The judged scenarios' error rate over the last second is above this, e.g. `5%`.
    pub error_rate_above: Option<Objective>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultActionDef {
    Kill,
    Stop,
    Pause,
    Toxic,
    Exec,
    Backup,
    Restore,
    Failover,
}

/// `region:` of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegionDef {
    Primary,
    Secondary,
}

/// `toxic:` — one of toxiproxy's toxics (or `down`), with its parameters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicDef {
    #[schemars(required)]
    pub kind: Option<ToxicKindDef>,
    /// latency: the delay added to each chunk.
    pub latency: Option<Duration>,
    /// latency: ± uniform jitter (default 0s).
    pub jitter: Option<Duration>,
    /// bandwidth: KB/s (1 KB = 1000 bytes).
    #[schemars(range(min = 1))]
    pub rate_kbps: Option<u64>,
    /// slow_close: how long the close is held back; slicer: the delay between pieces.
    pub delay: Option<Duration>,
    /// timeout: close after this (0s: hold the connection silent); reset_peer: reset this
    /// long after the first data (default 0s).
    pub timeout: Option<Duration>,
    /// slicer: average piece size, e.g. `64B`.
    #[schemars(with = "Option<String>")]
    pub average_size: Option<Size>,
    /// slicer: ± variation of the piece size (less than `average_size`; default 0B).
    #[schemars(with = "Option<String>")]
    pub size_variation: Option<Size>,
    /// limit_data: close after this many bytes, e.g. `10KiB`.
    #[schemars(with = "Option<String>")]
    pub bytes: Option<Size>,
    /// `downstream` (dependency -> gateway, default) or `upstream`.
    pub stream: Option<ToxicStreamDef>,
    /// Share of connections the toxic applies to, 0..1 (default 1).
    pub toxicity: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToxicKindDef {
    Latency,
    Bandwidth,
    SlowClose,
    Timeout,
    ResetPeer,
    Slicer,
    LimitData,
    /// The proxy down: connections refused, open ones reset.
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToxicStreamDef {
    Upstream,
    Downstream,
}

/// `exec:` — a command that injects the fault, a check that confirms it, and a recovery.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecDef {
    /// Run with `sh -c`, e.g. `kubectl delete pod -l app=redis`.
    #[schemars(required)]
    pub command: Option<String>,
    /// Each command is killed past this (default 30s).
    pub timeout: Option<Duration>,
    /// Confirms the fault took effect (exit 0); retried every 0.5 s until `check_within`.
    /// An unconfirmed fault fails the drill.
    pub check: Option<String>,
    /// How long the check may take to pass (default 10s).
    pub check_within: Option<Duration>,
    /// Undoes the fault after `duration` (or at the end).
    pub recover: Option<String>,
}

/// `expect:` of a fault.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultExpect {
    /// The RTO bound for every repetition, `<DURATION`, e.g. `"<15s"` (the default).
    pub rto: Option<String>,
    /// Lost acknowledged writes allowed: the writes acknowledged before the fault are read
    /// back after it recovered (needs a scenario with `ledger:`), summed over repetitions.
    pub lost_writes: Option<u64>,
    /// The lost writes' time span allowed (RPO as data lost), e.g. `0s`.
    pub rpo: Option<Duration>,
}

/// `recovery:` of a fault: when users count as served again.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryDef {
    /// Consecutive seconds that must each be good (default 3s).
    pub sustain: Option<Duration>,
    /// The most errors a good second may have, `1%` or 0.01 (default 1%).
    pub max_error_rate: Option<Objective>,
}
