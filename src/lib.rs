//! loadgate: a load-testing and SLO-verification harness.
//!
//! Data flows one way:
//! plan text → [`plan`] (parse, validate with line:column, lower) → [`spec::RunSpec`] →
//! [`session`] (stack up) → [`run`] (the run clock: [`engine`] load and [`control`]lers each
//! tick) → [`metrics`] (per-worker HDR recorders merged into a [`metrics::RunMetrics`], per
//! second series and typed events on one run clock) → [`checks`] (thresholds, windows, SLO
//! burn rates) → [`report`] (summary.json, junit.xml, timeseries.csv, the table, report.html,
//! the stored results under `results/` and run-to-run comparison).
//!
//! Module map (a module imports only modules listed before it; none imports its importer):
//! - [`grammar`]: the plan's small languages (units, thresholds, templates, response checks).
//! - [`spec`]: the lowered, validated description of a run; a leaf above `grammar`.
//! - [`metrics`]: recorders, histograms, the per-second series and slices, typed events.
//! - [`checks`]: judgements over measurements: whole-run and windowed thresholds, SLO
//!   arithmetic, failover RTO as users saw it, the `CheckResult` every judgement reports.
//! - [`engine`]: pacers, one file per executor, HTTP clients, steering (rate, weights).
//! - [`fault`]: the TCP fault proxy (toxiproxy's toxics on tokio) the stack puts in front of
//!   its dependencies.
//! - [`stack`]: the reference stack's backends (process, containers, external).
//! - [`control`]: controllers on the run clock (thresholds, probes, SLOs, canary, faults, ...).
//! - [`run`]: the run clock that drives the engine and the controllers.
//! - [`drills`]: drills that run several runs and conclude from them (the capacity search).
//! - [`report`]: report formats behind the `Exporter` trait, stored results, `--compare`, and
//!   the exact merge of segment results (`loadgate merge`).
//! - [`plan`]: the YAML plan model, validation and lowering into `spec`.
//! - [`session`]: one run's life (plan → stack → run → reports → stack down).
//! - [`cli`]: clap commands and exit codes.
pub mod checks;
pub mod cli;
pub mod control;
pub mod drills;
pub mod engine;
pub mod fault;
pub mod grammar;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod session;
pub mod spec;
pub mod stack;
