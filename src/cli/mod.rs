//! Command line: parse arguments, run the command, map outcomes to the contract's exit codes.
//!
//! Exit codes (API, see design.md): `0` every check passed; `99` a check failed; `2` invalid
//! plan or arguments (nothing was sent); `1` the harness itself failed.
//!
//! Signals: the first Ctrl-C (or SIGTERM) stops the load gracefully and the reports of what ran
//! are written; a second one returns at once (the reference stack is still torn down by Drop).
mod args;
mod attack;
mod signals;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

pub use args::*;
use signals::Interrupts;

use crate::plan::{self, PlanOptions};
use crate::report::{self, summary::Summary};
use crate::run::{self, RunOptions};
use crate::spec::{RunSpec, StackSpec};
use crate::stack;

pub const EXIT_PASS: u8 = 0;
pub const EXIT_HARNESS: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 99;
/// Returned when a second Ctrl-C cut the run short (128 + SIGINT, as shells do).
pub const EXIT_INTERRUPTED_TWICE: u8 = 130;

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
    let interrupts = Interrupts::install()?;
    let second = interrupts.second();
    let work = async {
        match command {
            Command::Run(a) => run_plan(a, &interrupts).await,
            Command::Attack(a) => attack::attack(a, &interrupts).await,
            Command::Stack(a) => stack_command(a, &interrupts).await,
            Command::Validate(_) | Command::Schema(_) => unreachable!("handled synchronously"),
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

fn plan_options(a: &PlanArgs) -> Result<PlanOptions, String> {
    let mut sets = Vec::new();
    for s in &a.sets {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            format!("--set {s:?}: expected KEY=VALUE, e.g. --set scenarios.chat.rate=50/s")
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
fn parse_segment(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("--segment {s:?}: expected I/N with 1 <= I <= N, e.g. 2/3");
    let (i, n) = s.split_once('/').ok_or_else(err)?;
    let i: u32 = i.trim().parse().map_err(|_| err())?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    if n == 0 || i == 0 || i > n {
        return Err(err());
    }
    Ok((i - 1, n))
}

/// Run options from the engine flags (threads, segment); reports and progress are the
/// caller's to fill in.
fn engine_options(e: &EngineArgs) -> Result<RunOptions, String> {
    let segment = e.segment.as_deref().map(parse_segment).transpose()?;
    if e.threads == Some(0) {
        return Err("--threads must be at least 1".into());
    }
    Ok(RunOptions {
        threads: e.threads,
        segment,
        ..RunOptions::default()
    })
}

/// `reports/<plan-name>-<timestamp>/`
fn default_out_dir(plan_name: &str) -> PathBuf {
    let ts = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "run".into());
    let safe: String = plan_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Path::new("reports").join(format!("{safe}-{ts}"))
}

fn invalid(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("loadgate: {msg}");
    Ok(ExitCode::from(EXIT_INVALID))
}

async fn run_plan(a: RunArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let mut opts = match plan_options(&a.plan_args) {
        Ok(o) => o,
        Err(e) => return invalid(e),
    };
    if let Some(b) = a.stack {
        // Through the plan layers, so `${TARGET_URL}` is left for the stack to fill.
        let name = clap::ValueEnum::to_possible_value(&b).expect("no skipped variants");
        opts.sets.push((
            "stack.reference.backend".into(),
            name.get_name().to_string(),
        ));
    }
    let mut run_opts = match engine_options(&a.engine) {
        Ok(v) => v,
        Err(e) => return invalid(e),
    };
    run_opts.progress = !a.json;
    let validated = match plan::load(&a.plan, &opts) {
        Ok(p) => p,
        Err(errs) => {
            eprintln!("{errs}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };

    let stack_spec: Option<StackSpec> = validated.stack();
    let mut running = None;
    let mut extra_env = Vec::new();
    if let Some(ss) = &stack_spec {
        eprintln!(
            "loadgate: starting the reference stack ({:?} backend)...",
            ss.backend
        );
        let stack_opts = stack::StackOptions::default();
        let started = tokio::select! {
            r = stack::start(ss, &stack_opts) => r.context("starting the reference stack")?,
            _ = interrupts.first() => {
                eprintln!("loadgate: interrupted while starting the stack");
                return Ok(ExitCode::from(EXIT_HARNESS));
            }
        };
        eprintln!("loadgate: stack up ({:?})", started.backend());
        extra_env = started.env();
        running = Some(started);
    }

    let result = async {
        let spec = match validated.lower(&extra_env) {
            Ok(s) => s,
            Err(errs) => {
                eprintln!("{errs}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        run_opts.out_dir = Some(a.out.clone().unwrap_or_else(|| default_out_dir(&spec.name)));
        execute_and_report(spec, run_opts, a.json, interrupts).await
    }
    .await;

    if let Some(stack) = running {
        if let Err(e) = stack.shutdown().await {
            eprintln!("loadgate: stopping the reference stack: {e}");
        }
    }
    result
}

/// Run a lowered spec, print the table (or JSON) and map the verdict to the exit code.
pub(crate) async fn execute_and_report(
    spec: RunSpec,
    run_opts: RunOptions,
    json: bool,
    interrupts: &Interrupts,
) -> anyhow::Result<ExitCode> {
    let outcome = run::execute(Arc::new(spec), &run_opts, interrupts.first()).await?;
    print_outcome(&outcome.summary, &outcome.written, json)?;
    Ok(ExitCode::from(verdict_code(&outcome.summary)))
}

fn print_outcome(summary: &Summary, written: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, summary)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{}", report::table::render(summary))?;
    }
    stdout.flush()?;
    if let Some(first) = written.first() {
        if let Some(dir) = first.parent() {
            eprintln!("loadgate: reports written to {}", dir.display());
        }
    }
    Ok(())
}

fn verdict_code(summary: &Summary) -> u8 {
    if summary.passed() {
        EXIT_PASS
    } else {
        EXIT_CHECK_FAILED
    }
}

async fn stack_command(a: StackArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    match a.action {
        StackAction::Up(up) => {
            let spec = StackSpec {
                backend: up.backend.into(),
                gateways: up.gateways.max(1),
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
    fn default_out_dir_is_under_reports() {
        let d = default_out_dir("my plan");
        assert!(d.starts_with("reports"));
        assert!(d
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("my-plan-"));
    }
}
