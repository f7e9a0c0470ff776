//! The command-line surface (clap derive). The commands and their meanings are part of the
//! contract in design.md: `run`, `attack`, `capacity`, `merge`, `validate`, `schema`, `stack`;
//! and `report`.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// loadgate: load tests and SLO gates for HTTP services.
/// Examples of `loadgate --help` (tests/help_examples.rs runs each one).
const EXAMPLES: &str = "Examples:
  loadgate validate plans/smoke.yaml
  loadgate run plans/smoke.yaml --out reports/smoke
  loadgate attack http://127.0.0.1:8080/health -c 8 -d 2s";

/// Examples of `loadgate run --help` (tests/help_examples.rs validates each one).
const RUN_EXAMPLES: &str = "Examples:
  loadgate run plans/smoke.yaml
  loadgate run plans/smoke.yaml --set scenarios.chat.rate=100/s --set scenarios.chat.duration=1m
  loadgate run plans/flow-jobs.yaml --out reports/flow --json
  loadgate run plans/basic.yaml --set target=http://127.0.0.1:8080 --segment 2/3 --start-at 2026-11-30T14:05:00Z --out reports/seg-2";

/// Examples of `loadgate merge --help`.
const MERGE_EXAMPLES: &str = "Examples:
  loadgate merge reports/seg-1 reports/seg-2 reports/seg-3 --out reports/merged
  loadgate merge reports/seg-* --out reports/merged --json";

/// Examples of `loadgate capacity --help` (tests/help_examples.rs validates each one).
const CAPACITY_EXAMPLES: &str = "Examples:
  loadgate capacity plans/capacity.yaml
  loadgate capacity plans/capacity.yaml --set capacity.expected=200/s --json
  loadgate capacity --url http://127.0.0.1:8080/health --slo 'p(95)<100' --min 100/s --max 5000/s";

/// Examples of `loadgate attack --help` (tests/help_examples.rs runs each one).
const ATTACK_EXAMPLES: &str = "Examples:
  loadgate attack http://127.0.0.1:8080/health -c 8 -d 2s
  loadgate attack http://127.0.0.1:8080/health --rate 200/s -d 2s --json
  loadgate attack http://127.0.0.1:8080/v1/chat -m POST -H 'content-type: application/json' -b '{\"prompt\":\"hi\"}' --rate 50/s -d 2s --threshold 'http_req_duration: p(95)<250ms'";

#[derive(Debug, Parser)]
#[command(name = "loadgate", version, about, long_about = None, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a plan; reports go to --out (default reports/<plan-name>-<timestamp>/).
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Ad-hoc single-scenario run without a plan file (like wrk / oha).
    #[command(after_help = ATTACK_EXAMPLES)]
    Attack(AttackArgs),
    /// Search the highest arrival rate at which the thresholds still hold (a plan's
    /// `capacity:` section, or ad hoc with --url and --slo).
    #[command(after_help = CAPACITY_EXAMPLES)]
    Capacity(CapacityArgs),
    /// Check a plan and print every problem with its line and column.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the plan format (or of summary.json with --summary).
    Schema(SchemaArgs),
    /// Start, stop or inspect the reference stack on its own.
    Stack(StackArgs),
    /// Write a run's report files again from its stored results (DIR/results/), or compare
    /// it with a baseline run (--compare BASELINE_DIR).
    Report(ReportArgs),
    /// Merge the results of a distributed run's segments (`run --segment I/N`) exactly and
    /// judge every threshold, windowed threshold and SLO over their union; writes the
    /// reports one machine would (exit 0 pass, 99 a check failed, 2 a segment is missing or
    /// does not belong).
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The segments' output directories (each with results/segment.json), one per segment.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the merged run's reports go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the merged summary.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's output directory (the one with summary.json and results/).
    pub dir: PathBuf,
    /// Compare DIR with this baseline run's output directory: deltas per scenario and check
    /// (terminal table, DIR/compare.json, DIR/compare.html).
    #[arg(long, value_name = "BASELINE_DIR")]
    pub compare: Option<PathBuf>,
    /// With --compare: exit 99 when a limit is broken beyond noise, e.g.
    /// p95=10%,error_rate=0.5pp (latency N% or Nms, error_rate Npp, rps N%).
    #[arg(long, value_name = "LIMITS", requires = "compare")]
    pub max_regression: Option<String>,
    /// Print the summary (or the comparison) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Options shared by the commands that read a plan.
#[derive(Debug, Args, Clone, Default)]
pub struct PlanArgs {
    /// Environment profile from the plan's `environments:` section (dev, staging, prod, ...).
    #[arg(long = "env", value_name = "NAME", env = "LOADGATE_ENV")]
    pub env_profile: Option<String>,
    /// Override a plan value by its dotted path, e.g. --set scenarios.chat.rate=50/s.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (YAML).
    pub plan: PathBuf,
    /// Output directory for the reports.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub plan_args: PlanArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub safety: SafetyArgs,
    /// Override the plan's stack backend (auto, containers, process, external).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub stack: Option<BackendArg>,
    /// Print summary.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Serve the run's own metrics in Prometheus text on this address while it runs
    /// (e.g. 127.0.0.1:9464; GET /metrics).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Safety limits shared by `run` and `attack`: load goes only where it is meant to.
#[derive(Debug, Args, Clone, Default)]
pub struct SafetyArgs {
    /// A host besides loopback (and the plan's `allow_hosts`) that may get load; repeatable,
    /// `*.domain` matches subdomains.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Refuse to run when the arrival rates add up to more than this, e.g. 500/s.
    #[arg(long, value_name = "N/s")]
    pub max_rate: Option<String>,
}

/// Engine tuning shared by `run` and `attack`.
#[derive(Debug, Args, Clone, Default)]
pub struct EngineArgs {
    /// Worker threads generating load (default: the CPUs this process may run on).
    #[arg(long, value_name = "N", env = "LOADGATE_THREADS")]
    pub threads: Option<usize>,
    /// Run only segment I of N of the load (for distributed runs), e.g. 1/3 (1-based); its
    /// results can be merged with the other segments' by `loadgate merge`.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<String>,
    /// Start the load at this wall-clock time, RFC 3339 (2026-11-30T14:05:00Z) or Unix
    /// seconds (@1796047500): the segments of a distributed run share it so their seconds
    /// align. More than 1 s late is an error.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct AttackArgs {
    /// Target URL, e.g. http://127.0.0.1:8080/
    pub url: String,
    /// Closed model: this many connections (VUs) at full speed.
    #[arg(
        short = 'c',
        long = "connections",
        value_name = "N",
        conflicts_with = "rate"
    )]
    pub connections: Option<u32>,
    /// Open model: this many requests per second, with its unit (e.g. 1000/s, 6000/m);
    /// latency is measured from the intended send time.
    #[arg(long, value_name = "N/s")]
    pub rate: Option<String>,
    /// How long to run (e.g. 10s, 1m).
    #[arg(
        short = 'd',
        long = "duration",
        value_name = "DURATION",
        default_value = "10s"
    )]
    pub duration: String,
    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub timeout: String,
    /// HTTP method.
    #[arg(short = 'm', long, default_value = "GET")]
    pub method: String,
    /// Extra header, repeatable: -H 'authorization: Bearer x'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(short = 'b', long)]
    pub body: Option<String>,
    /// Speak HTTP/2 (h2c prior knowledge on http://, ALPN on https://).
    #[arg(long)]
    pub http2: bool,
    /// HTTP/2: most connections in all (h2load's -c); default: as many as the VUs need at
    /// --streams VUs per connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub h2_connections: Option<u32>,
    /// HTTP/2: VUs (concurrent streams) per connection (h2load's -m).
    #[arg(long, value_name = "M", default_value_t = crate::spec::DEFAULT_H2_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub streams: u32,
    /// Accept any TLS certificate.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Open model: maximum concurrent requests (VUs) before iterations are dropped.
    #[arg(long, value_name = "N")]
    pub max_vus: Option<u32>,
    /// Threshold, repeatable: --threshold 'http_req_duration: p(95)<250'.
    #[arg(long = "threshold", value_name = "METRIC: EXPR")]
    pub thresholds: Vec<String>,
    /// Print summary.json to stdout and nothing else there.
    #[arg(long)]
    pub json: bool,
    /// Also write the reports into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Serve the run's own metrics in Prometheus text on this address while it runs
    /// (e.g. 127.0.0.1:9464; GET /metrics).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub safety: SafetyArgs,
}

#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The plan file (YAML) with the scenario to search and its thresholds.
    #[arg(required_unless_present = "url", conflicts_with = "url")]
    pub plan: Option<PathBuf>,
    /// Ad hoc: search the rate of GET (or -m) requests to this URL, without a plan.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Ad hoc: what must hold at every step, repeatable: 'p(95)<100' (latency, ms),
    /// 'rate<0.01' (failed share), or 'METRIC: EXPR'.
    #[arg(long = "slo", value_name = "EXPR", requires = "url")]
    pub slos: Vec<String>,
    /// The scenario whose rate is searched (plans with several scenarios).
    #[arg(long, value_name = "NAME", conflicts_with = "url")]
    pub scenario: Option<String>,
    /// The first rate tried; the search doubles from here (default 10/s).
    #[arg(long, value_name = "N/s")]
    pub min: Option<String>,
    /// The highest rate tried (default 100000/s).
    #[arg(long, value_name = "N/s")]
    pub max: Option<String>,
    /// The expected production rate: the capacity must reach 2x this.
    #[arg(long, value_name = "N/s")]
    pub expected: Option<String>,
    /// Bisect to this precision (default 5%).
    #[arg(long, value_name = "PERCENT")]
    pub precision: Option<String>,
    /// Load before each step's judged part (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,
    /// The judged part of each step (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
    /// Pause between steps (default 2s).
    #[arg(long, value_name = "DURATION")]
    pub cooldown: Option<String>,
    /// Trials of each rate around the knee (default 3).
    #[arg(long, value_name = "N")]
    pub repeats: Option<u32>,
    /// In-flight requests (VUs) a step may have (default: rate x request timeout).
    #[arg(long, value_name = "N")]
    pub max_vus: Option<u32>,
    /// Ad hoc: per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "10s", requires = "url")]
    pub timeout: String,
    /// Ad hoc: HTTP method.
    #[arg(short = 'm', long, default_value = "GET", requires = "url")]
    pub method: String,
    /// Ad hoc: extra header, repeatable: -H 'authorization: Bearer x'.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        requires = "url"
    )]
    pub headers: Vec<String>,
    /// Ad hoc: request body.
    #[arg(short = 'b', long, requires = "url")]
    pub body: Option<String>,
    /// Worker threads generating load (default: the CPUs this process may run on).
    #[arg(long, value_name = "N", env = "LOADGATE_THREADS")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub plan_args: PlanArgs,
    #[command(flatten)]
    pub safety: SafetyArgs,
    /// Override the plan's stack backend (auto, containers, process, external).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub stack: Option<BackendArg>,
    /// Output directory for the reports (plans: default reports/<plan-name>-<timestamp>/;
    /// ad hoc: none unless given).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print summary.json (with its `capacity` section) to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The plan file (YAML).
    pub plan: PathBuf,
    #[command(flatten)]
    pub plan_args: PlanArgs,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of summary.json instead of the plan's.
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Args)]
pub struct StackArgs {
    #[command(subcommand)]
    pub action: StackAction,
}

#[derive(Debug, Subcommand)]
pub enum StackAction {
    /// Start the stack, print its environment lines, stay up until Ctrl-C.
    Up(StackUpArgs),
    /// Stop stacks started by `loadgate stack up`.
    Down,
    /// Show running stacks.
    Status,
}

#[derive(Debug, Args)]
pub struct StackUpArgs {
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendArg,
    /// Number of gateway instances (0: only Redis and PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub gateways: u32,
    /// Put an edge balancer in front of the gateways.
    #[arg(long, value_enum)]
    pub edge: Option<EdgeArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Auto,
    Containers,
    Process,
    External,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EdgeArg {
    RoundRobin,
    LeastConnections,
}

impl From<BackendArg> for crate::spec::StackBackend {
    fn from(b: BackendArg) -> Self {
        use crate::spec::StackBackend as S;
        match b {
            BackendArg::Auto => S::Auto,
            BackendArg::Containers => S::Containers,
            BackendArg::Process => S::Process,
            BackendArg::External => S::External,
        }
    }
}

impl From<EdgeArg> for crate::spec::EdgeStrategy {
    fn from(e: EdgeArg) -> Self {
        match e {
            EdgeArg::RoundRobin => crate::spec::EdgeStrategy::RoundRobin,
            EdgeArg::LeastConnections => crate::spec::EdgeStrategy::LeastConnections,
        }
    }
}
