//! Command line: parse arguments, run the command, map outcomes to the contract's exit codes.
//!
//! Exit codes (API, see design.md): `0` every check passed; `99` a check failed; `2` invalid
//! plan or arguments (nothing was sent); `1` the harness itself failed; `105` the run was cut
//! short by Ctrl-C / SIGTERM (reports of what ran are written; never a pass).
//!
//! The commands that run load hand over to [`crate::session`]; this module only turns
//! arguments into a [`Source`] and [`SessionOptions`], prints the outcome and maps it to an
//! exit code.
//!
//! Signals: the first Ctrl-C (or SIGTERM) stops the load gracefully and the reports of what ran
//! are written; a second one returns at once (the reference stack is still torn down by Drop).
mod args;
mod attack;
mod capacity;
mod merge_cmd;
mod report_cmd;
mod signals;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

pub use args::*;
use signals::Interrupts;

use crate::plan::{self, PlanOptions};
use crate::report::{self, summary::Summary};
use crate::run::RunOptions;
use crate::session::{self, Finished, OutDir, Outcome, SessionError, SessionOptions, Source};
use crate::spec::StackSpec;
use crate::stack;

pub const EXIT_PASS: u8 = 0;
pub const EXIT_HARNESS: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 99;
/// The run was cut short by Ctrl-C / SIGTERM (k6's external-abort code): reports cover what
/// ran, and it never reads as a pass.
pub const EXIT_INTERRUPTED: u8 = 105;
/// Returned when a second Ctrl-C cut the run short (128 + SIGINT, as shells do).
pub const EXIT_INTERRUPTED_TWICE: u8 = 130;

/// A command-line argument that cannot be used; the message names the flag and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<String> for UsageError {
    fn from(msg: String) -> Self {
        UsageError(msg)
    }
}

impl From<&str> for UsageError {
    fn from(msg: &str) -> Self {
        UsageError(msg.to_string())
    }
}

impl UsageError {
    fn new(msg: impl Into<String>) -> UsageError {
        UsageError(msg.into())
    }
}

/// Entry point used by `main` and by tests.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_PASS
            };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    init_tracing();
    match cli.command {
        Command::Validate(a) => Ok(validate(&a)),
        Command::Report(a) => Ok(report_cmd::report(&a)),
        Command::Merge(a) => Ok(merge_cmd::merge(&a)),
        Command::Schema(a) => {
            let schema = if a.summary {
                report::summary::json_schema()
            } else {
                plan::json_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::from(EXIT_PASS))
        }
        command => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("building the tokio runtime")?;
            let code = rt.block_on(async_main(command));
            // Engine threads or stuck connections must not keep the process alive.
            rt.shutdown_background();
            code
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOADGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn async_main(command: Command) -> anyhow::Result<ExitCode> {
    let interrupts = Arc::new(Interrupts::install()?);
    let second = interrupts.second();
    let work = async {
        match command {
            Command::Run(a) => run_plan(a, &interrupts).await,
            Command::Attack(a) => attack::attack(a, &interrupts).await,
            Command::Capacity(a) => capacity::capacity(a, &interrupts).await,
            Command::Stack(a) => stack_command(a, &interrupts).await,
            Command::Validate(_) | Command::Schema(_) | Command::Report(_) | Command::Merge(_) => {
                unreachable!("handled synchronously")
            }
        }
    };
    tokio::select! {
        res = work => res,
        _ = second => {
            eprintln!("loadgate: interrupted twice, exiting now");
            Ok(ExitCode::from(EXIT_INTERRUPTED_TWICE))
        }
    }
}

fn plan_options(a: &PlanArgs) -> Result<PlanOptions, UsageError> {
    let mut sets = Vec::new();
    for s in &a.sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            UsageError(format!(
                "--set {s:?}: expected KEY=VALUE, e.g. --set scenarios.chat.rate=50/s"
            ))
        })?;
        sets.push((k.trim().to_string(), v.to_string()));
    }
    Ok(PlanOptions {
        env_profile: a.env_profile.clone(),
        sets,
        env: Arc::new(|k: &str| std::env::var(k).ok()),
    })
}

fn validate(a: &ValidateArgs) -> ExitCode {
    let opts = match plan_options(&a.plan_args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgate: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    match plan::load(&a.plan, &opts) {
        Ok(p) => {
            println!("{}: ok (plan {:?})", a.plan.display(), p.name());
            ExitCode::from(EXIT_PASS)
        }
        Err(errs) => {
            eprintln!("{errs}");
            eprintln!("{}: {} problem(s)", a.plan.display(), errs.0.len());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Parse `I/N` (1-based) into the engine's 0-based `(index, count)`.
fn parse_segment(s: &str) -> Result<(u32, u32), UsageError> {
    let err = || {
        UsageError(format!(
            "--segment {s:?}: expected I/N with 1 <= I <= N, e.g. 2/3"
        ))
    };
    let (i, n) = s.split_once('/').ok_or_else(err)?;
    let i: u32 = i.trim().parse().map_err(|_| err())?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    if n == 0 || i == 0 || i > n {
        return Err(err());
    }
    Ok((i - 1, n))
}

/// Run options from the engine flags (threads, segment); progress is the caller's to set.
fn engine_options(e: &EngineArgs) -> Result<RunOptions, UsageError> {
    let segment = e.segment.as_deref().map(parse_segment).transpose()?;
    if e.threads == Some(0) {
        return Err(UsageError::new("--threads must be at least 1"));
    }
    Ok(RunOptions {
        threads: e.threads,
        segment,
        ..RunOptions::default()
    })
}

/// `--start-at`, parsed: RFC 3339 (`2026-11-30T14:05:00Z`) or Unix seconds (`@1796047500`).
fn start_at_option(e: &EngineArgs) -> Result<Option<std::time::SystemTime>, UsageError> {
    let Some(s) = e.start_at.as_deref().map(str::trim) else {
        return Ok(None);
    };
    let err = || {
        UsageError(format!(
            "--start-at {s:?}: expected an RFC 3339 time such as 2026-11-30T14:05:00Z, or Unix seconds such as @1796047500"
        ))
    };
    if let Some(secs) = s.strip_prefix('@') {
        let secs: f64 = secs.parse().map_err(|_| err())?;
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(err());
        }
        return Ok(Some(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs),
        ));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| err())?;
    let ns = u64::try_from(t.unix_timestamp_nanos()).map_err(|_| err())?;
    Ok(Some(
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns),
    ))
}

/// `--max-rate`, parsed (the host list needs no parsing).
fn safety_options(s: &SafetyArgs) -> Result<Option<f64>, UsageError> {
    s.max_rate
        .as_deref()
        .map(|r| {
            crate::grammar::units::parse_rate(r)
                .map_err(|e| UsageError(format!("--max-rate: {e}")))
                .and_then(|v| {
                    if v > 0.0 {
                        Ok(v)
                    } else {
                        Err(UsageError("--max-rate must be positive, e.g. 500/s".into()))
                    }
                })
        })
        .transpose()
}

fn invalid(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("loadgate: {msg}");
    Ok(ExitCode::from(EXIT_INVALID))
}

/// A token cancelled by the first Ctrl-C / SIGTERM.
fn first_interrupt(interrupts: &Arc<Interrupts>) -> CancellationToken {
    let token = CancellationToken::new();
    let (t, i) = (token.clone(), interrupts.clone());
    tokio::spawn(async move {
        i.first().await;
        t.cancel();
    });
    token
}

async fn run_plan(a: RunArgs, interrupts: &Arc<Interrupts>) -> anyhow::Result<ExitCode> {
    let options = match plan_options(&a.plan_args) {
        Ok(o) => o,
        Err(e) => return invalid(e),
    };
    let mut run = match engine_options(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    run.progress = !a.json;
    let max_rate = match safety_options(&a.safety) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let start_at = match start_at_option(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    let opts = SessionOptions {
        out: a.out.clone().map(OutDir::At).unwrap_or(OutDir::Default),
        run,
        stack: stack::StackOptions::default(),
        announce: true,
        allow_hosts: a.safety.allow_hosts.clone(),
        max_rate,
        metrics_addr: a.metrics_addr,
        start_at,
    };
    let source = Source::Plan {
        path: a.plan.clone(),
        options,
        backend: a.stack.map(Into::into),
    };
    finish(source, &opts, a.json, interrupts).await
}

/// Run a session, print the table (or JSON) and map the outcome to the exit code.
pub(crate) async fn finish(
    source: Source,
    opts: &SessionOptions,
    json: bool,
    interrupts: &Arc<Interrupts>,
) -> anyhow::Result<ExitCode> {
    let interrupt = first_interrupt(interrupts);
    report_session(session::run(source, opts, &interrupt).await, json)
}

/// Print a session's outcome (the table, or JSON) and map it to the exit code.
pub(crate) fn report_session(
    res: Result<Finished, SessionError>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::drills::capacity::CapacityError;
    match res {
        Ok(done) => {
            print_outcome(&done, json)?;
            if let Some(e) = &done.report_error {
                // Judged all the same, but CI must not read a run whose reports went missing
                // from where it looks for them as a pass: the harness failed.
                match &done.dir {
                    Some(d) => eprintln!(
                        "loadgate: {e}; the reports were written to {} instead",
                        d.display()
                    ),
                    None => eprintln!("loadgate: {e}; no report could be written anywhere"),
                }
                return Ok(ExitCode::from(EXIT_HARNESS));
            }
            Ok(ExitCode::from(match done.outcome() {
                Outcome::Passed => EXIT_PASS,
                Outcome::Failed => EXIT_CHECK_FAILED,
                Outcome::Interrupted => EXIT_INTERRUPTED,
            }))
        }
        Err(SessionError::Invalid(errs)) => {
            eprintln!("{errs}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(e @ SessionError::Preflight(_)) => {
            eprintln!("loadgate: {e}");
            Ok(ExitCode::from(EXIT_HARNESS))
        }
        Err(
            e @ (SessionError::Refused(_)
            | SessionError::MetricsAddr { .. }
            | SessionError::StartPassed { .. }),
        ) => {
            eprintln!("loadgate: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(SessionError::Capacity(e @ CapacityError::Run(_))) => Err(anyhow::Error::new(e)),
        Err(SessionError::Capacity(e)) => {
            eprintln!("loadgate: {e}; nothing was sent");
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(SessionError::InterruptedAtStart) => {
            eprintln!("loadgate: {}", SessionError::InterruptedAtStart);
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

fn print_outcome(done: &Finished, json: bool) -> anyhow::Result<()> {
    let summary: &Summary = &done.summary;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, summary)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{}", report::table::render(summary))?;
    }
    stdout.flush()?;
    if let (Some(dir), None) = (&done.dir, &done.report_error) {
        eprintln!("loadgate: reports written to {}", dir.display());
    }
    Ok(())
}

async fn stack_command(a: StackArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    match a.action {
        StackAction::Up(up) => {
            if up.gateways == 0 && up.edge.is_some() {
                return invalid("--edge needs at least one gateway (--gateways 1 or more)");
            }
            let spec = StackSpec {
                backend: up.backend.into(),
                gateways: up.gateways,
                edge: up.edge.map(Into::into),
                ..StackSpec::default()
            };
            stack::cli::up(&spec, &stack::StackOptions::default(), interrupts.first()).await?;
            Ok(ExitCode::from(EXIT_PASS))
        }
        StackAction::Down => {
            stack::cli::down()?;
            Ok(ExitCode::from(EXIT_PASS))
        }
        StackAction::Status => {
            stack::cli::status()?;
            Ok(ExitCode::from(EXIT_PASS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_parse_one_based() {
        assert_eq!(parse_segment("1/3"), Ok((0, 3)));
        assert_eq!(parse_segment("3/3"), Ok((2, 3)));
        assert!(parse_segment("0/3").is_err());
        assert!(parse_segment("4/3").is_err());
        assert!(parse_segment("x").is_err());
    }

    #[test]
    fn start_at_reads_rfc3339_and_unix_seconds() {
        let at = |s: &str| {
            start_at_option(&EngineArgs {
                start_at: Some(s.into()),
                ..EngineArgs::default()
            })
        };
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_047_500);
        assert_eq!(at("@1796047500"), Ok(Some(t)));
        assert_eq!(
            at("2026-11-30T14:05:00Z").unwrap(),
            at("@1796047500").unwrap()
        );
        assert_eq!(
            at("2026-11-30T15:05:00.5+01:00").unwrap(),
            Some(t + std::time::Duration::from_millis(500))
        );
        assert!(at("tomorrow").is_err());
        assert!(at("@-5").is_err());
    }
}
