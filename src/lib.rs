//! loadgate: a load-testing and SLO-verification harness.
//!
//! Data flows one way:
//! plan text → [`plan`] (parse, validate with line:column, lower) → [`spec::RunSpec`] →
//! [`engine`] (pacers, executors, HTTP clients, workers) → [`metrics`] (per-worker HDR
//! recorders merged into a [`metrics::RunMetrics`], with a per-second timeline and events on one
//! run clock) → [`checks`] (thresholds, response checks) → [`report`] (summary.json, junit.xml,
//! timeseries.csv, terminal table).
//!
//! Module map:
//! - [`cli`]: clap commands (`run`, `attack`, `validate`, `schema`, `stack`) and exit codes.
//! - [`plan`]: the YAML plan model, units, validation and lowering.
//! - [`spec`]: the lowered, validated description of a run that the engine executes.
//! - [`engine`]: pacers, one file per executor, the HTTP clients, templating and feeders.
//! - [`metrics`]: recorders, histograms, the time series, error kinds, merging.
//! - [`checks`]: k6's threshold grammar and its evaluation; response checks.
//! - [`report`]: one file per report format.
//! - [`stack`]: the reference stack's backends (process, containers, external).
pub mod checks;
pub mod cli;
pub mod engine;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod spec;
pub mod stack;
