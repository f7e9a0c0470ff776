//! One run's life, in one place: plan → validated plan → stack up → lowered [`RunSpec`] →
//! run (engine and controllers on the run clock) → reports → stack down.
//!
//! `loadgate run` starts from a plan file, `loadgate attack` from a spec it lowered from its
//! flags; [`capacity`] runs a capacity search in place of the single run (through [`open`],
//! the same reports, [`Opened::close`]). `loadgate merge` does not run anything: it adds stored
//! segment results and re-judges them (`report::merge`). The CLI only parses
//! arguments, calls [`run`] and maps the [`Outcome`] (or the [`SessionError`]) to an exit
//! code.
//!
//! Order matters for what a user sees: every plan problem is reported before anything starts;
//! the report directory is created (and so proven writable) before the stack starts and any
//! request is sent; the stack is always shut down, also when lowering or the run fails; an
//! interrupt while the stack starts stops there.
//!
//! A segment of a distributed run (`--segment i/N`, session/segment.rs) runs its share of the plan
//! and stores what a merge needs besides the usual results.
mod segment;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::control;
use crate::control::segment::{KeepError, SliceRecorder};
use crate::metrics::slices::EncodedSlice;
use crate::metrics::RunMetrics;
use crate::plan::{self, PlanErrors, PlanOptions};
use crate::report::results::Judgement;
use crate::report::segment::SegmentManifest;
use crate::report::summary::RunInfo;
use crate::report::{self, ReportError, RunReport, Summary};
use crate::run::{self, RunError, RunOptions};
use crate::spec::{ReportFormat, RunSpec, StackBackend};
use crate::stack::{self, StackError, StackHandle, StackOptions};

pub mod capacity;

/// Where a session's run comes from.
// One per session, moved once: the size of a RunSpec inline costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A plan file, read with these options; `backend` overrides its stack backend.
    Plan {
        path: PathBuf,
        options: PlanOptions,
        backend: Option<StackBackend>,
    },
    /// An already lowered run (`attack`).
    Spec(RunSpec),
}

/// Where reports go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutDir {
    /// `reports/<plan-name>-<timestamp>/`.
    Default,
    At(PathBuf),
    /// Write no files.
    Nowhere,
}

/// How a session runs.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub out: OutDir,
    pub run: RunOptions,
    pub stack: StackOptions,
    /// Say what the session does on stderr (stack start, report directory).
    pub announce: bool,
    /// Hosts besides loopback and the plan's `allow_hosts` that may get load
    /// (`--allow-host`).
    pub allow_hosts: Vec<String>,
    /// Refuse a run whose arrival rates add up to more than this (`--max-rate`, per second).
    pub max_rate: Option<f64>,
    /// Serve the run's metrics in Prometheus text here while it runs (`--metrics-addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Start the load at this wall-clock time (`--start-at`: the segments of a distributed
    /// run share it, so their seconds align).
    pub start_at: Option<std::time::SystemTime>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            out: OutDir::Default,
            run: RunOptions::default(),
            stack: StackOptions::default(),
            announce: false,
            allow_hosts: Vec::new(),
            max_rate: None,
            metrics_addr: None,
            start_at: None,
        }
    }
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed.
    Passed,
    /// A check failed (or a check aborted the run).
    Failed,
    /// Ctrl-C / SIGTERM cut the run short; the reports cover what ran.
    Interrupted,
}

/// What a finished session produced.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    /// Report files written, summary.json first.
    pub written: Vec<PathBuf>,
    /// The directory they are in, when any were written.
    pub dir: Option<PathBuf>,
    /// Why the reports are not in the directory asked for (then `dir` is a fallback under
    /// the system temp dir, or `None` when that failed too). The run is judged all the same;
    /// the binary exits 1.
    pub report_error: Option<ReportError>,
}

impl Finished {
    pub fn outcome(&self) -> Outcome {
        if self.summary.interrupted {
            Outcome::Interrupted
        } else if self.summary.passed() {
            Outcome::Passed
        } else {
            Outcome::Failed
        }
    }
}

/// Why a session could not produce a judged run.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The plan is invalid; nothing was started or sent.
    #[error("{0}")]
    Invalid(PlanErrors),
    /// The reference stack did not start.
    #[error("starting the reference stack: {0}")]
    Stack(#[from] StackError),
    /// Ctrl-C while the stack was starting (or while waiting for `--start-at`): nothing was
    /// sent.
    #[error("interrupted before the load started; nothing was sent")]
    InterruptedAtStart,
    /// `--start-at` had passed when the run was ready to start.
    #[error("--start-at passed {:.1} s ago (more than the {} s a segment may be late): choose a start further ahead, so every segment is ready before it; nothing was sent", late.as_secs_f64(), segment::START_TOLERANCE.as_secs())]
    StartPassed { late: std::time::Duration },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("writing reports: {0}")]
    Report(#[from] ReportError),
    /// The report directory cannot take the reports; checked before anything is sent.
    #[error("{0}; nothing was sent")]
    Preflight(ReportError),
    /// A safety rule refused the run; nothing was sent.
    #[error("{0}; nothing was sent")]
    Refused(String),
    /// The capacity search cannot run (no such scenario, no threshold to judge it), or a
    /// step's run failed.
    #[error(transparent)]
    Capacity(#[from] crate::drills::capacity::CapacityError),
    /// `--metrics-addr` cannot be listened on; nothing was sent.
    #[error("--metrics-addr {addr}: cannot listen: {source}; nothing was sent")]
    MetricsAddr {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Whether `host` is loopback: `localhost` (or a subdomain of it) or a loopback IP.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` is named by an `allow_hosts` entry (`*.domain` matches its subdomains).
fn allowed(host: &str, allow: &[String]) -> bool {
    allow.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == a,
        }
    })
}

/// The safety rules, checked before anything is sent: load goes only to loopback or to a
/// host the plan (`allow_hosts`) or the command line (`--allow-host`) names, so a mistyped
/// host never gets load; and the plan's total arrival rate stays under `--max-rate`.
pub fn check_safety(spec: &RunSpec, opts: &SessionOptions) -> Result<(), SessionError> {
    for host in spec.hosts() {
        if !is_loopback(&host)
            && !allowed(&host, &spec.allow_hosts)
            && !allowed(&host, &opts.allow_hosts)
        {
            return Err(SessionError::Refused(format!(
                "target host `{host}` is not loopback and not allowed: add it to the plan's `allow_hosts` or pass `--allow-host {host}`"
            )));
        }
    }
    if let Some(max) = opts.max_rate {
        let peak = spec.peak_rate();
        if peak > max {
            return Err(SessionError::Refused(format!(
                "the plan's arrival rates add up to {}/s, above --max-rate {}/s",
                crate::metrics::format_number(peak),
                crate::metrics::format_number(max)
            )));
        }
    }
    Ok(())
}

/// Run a session to its judged end. `interrupt` is cancelled by the first Ctrl-C / SIGTERM.
pub async fn run(
    source: Source,
    opts: &SessionOptions,
    interrupt: &CancellationToken,
) -> Result<Finished, SessionError> {
    let opened = open(source, opts, interrupt).await?;
    let handle = opened.handle();
    let Opened {
        spec,
        dir,
        info,
        stack,
        ..
    } = opened;
    let result = judge(spec, dir, handle, info, opts, interrupt).await;
    close(stack).await;
    result
}

/// A session ready to send load: the lowered run, its report directory (created and
/// writable), the reference stack when the plan has one, and what runs (for the reports).
/// [`close`] its stack when done.
pub struct Opened {
    pub spec: RunSpec,
    pub dir: Option<PathBuf>,
    pub info: RunInfo,
    /// The plan's `capacity:` section, lowered (plans only).
    pub capacity: Option<crate::spec::CapacitySpec>,
    stack: Option<stack::RunningStack>,
}

impl Opened {
    /// The reference stack's control handle, when the session started one.
    pub fn handle(&self) -> Option<StackHandle> {
        self.stack.as_ref().map(|s| s.handle())
    }

    /// Stop the reference stack, if the session started one.
    pub async fn close(self) {
        close(self.stack).await
    }
}

async fn close(stack: Option<stack::RunningStack>) {
    if let Some(stack) = stack {
        if let Err(e) = stack.shutdown().await {
            tracing::error!(error = %e, "stopping the reference stack");
            eprintln!("loadgate: stopping the reference stack: {e}");
        }
    }
}

/// Everything before the load: validate the plan, create the report directory, start the
/// stack, lower the run against it, check the safety rules. On an error the stack is
/// already stopped.
pub async fn open(
    source: Source,
    opts: &SessionOptions,
    interrupt: &CancellationToken,
) -> Result<Opened, SessionError> {
    match source {
        Source::Spec(spec) => {
            check_safety(&spec, opts)?;
            let dir = out_dir(&opts.out, &spec.name);
            prepare_dir(dir.as_deref())?;
            let info = RunInfo {
                loadgate_version: env!("CARGO_PKG_VERSION").into(),
                plan_path: None,
                plan_sha256: None,
                environment: None,
                overrides: Vec::new(),
                target: spec.target.clone(),
                stack: None,
            };
            Ok(Opened {
                spec,
                dir,
                info,
                capacity: None,
                stack: None,
            })
        }
        Source::Plan {
            path,
            mut options,
            backend,
        } => {
            if let Some(b) = backend {
                // Through the plan layers, so `${TARGET_URL}` is left for the stack to fill.
                options.sets.push((
                    "stack.reference.backend".into(),
                    backend_name(b).to_string(),
                ));
            }
            let validated = plan::load(&path, &options).map_err(SessionError::Invalid)?;
            if let (Some(_), Some(seg)) = (validated.stack(), opts.run.segment) {
                return Err(segment::refuse_stack(seg));
            }
            let dir = out_dir(&opts.out, validated.name());
            prepare_dir(dir.as_deref())?;
            let mut running = None;
            let mut extra_env = Vec::new();
            if let Some(ss) = validated.stack() {
                if opts.announce {
                    eprintln!(
                        "loadgate: starting the reference stack ({:?} backend)...",
                        ss.backend
                    );
                }
                let started = tokio::select! {
                    r = stack::start(&ss, &opts.stack) => r?,
                    _ = interrupt.cancelled() => return Err(SessionError::InterruptedAtStart),
                };
                if opts.announce {
                    eprintln!("loadgate: stack up ({:?})", started.backend());
                }
                extra_env = started.env();
                running = Some(started);
            }
            let lowered = validated
                .lower(&extra_env)
                .map_err(SessionError::Invalid)
                .and_then(|spec| check_safety(&spec, opts).map(|()| spec));
            match lowered {
                Err(e) => {
                    close(running).await;
                    Err(e)
                }
                Ok(spec) => {
                    let info = RunInfo {
                        loadgate_version: env!("CARGO_PKG_VERSION").into(),
                        plan_path: Some(validated.file().to_string()),
                        plan_sha256: Some(validated.digest().to_string()),
                        environment: validated.options().env_profile.clone(),
                        overrides: validated
                            .options()
                            .sets
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect(),
                        target: spec.target.clone(),
                        stack: running
                            .as_ref()
                            .map(|s| backend_name(s.backend()).to_string()),
                    };
                    Ok(Opened {
                        spec,
                        dir,
                        info,
                        capacity: validated.capacity().cloned(),
                        stack: running,
                    })
                }
            }
        }
    }
}

/// Run a lowered spec with the standard controllers, build the summary, write the reports.
async fn judge(
    spec: RunSpec,
    dir: Option<PathBuf>,
    stack: Option<StackHandle>,
    info: RunInfo,
    opts: &SessionOptions,
    interrupt: &CancellationToken,
) -> Result<Finished, SessionError> {
    let mut spec = spec;
    if let Some(seg) = opts.run.segment {
        segment::prepare(&mut spec, seg)?;
    }
    if let Some(d) = &dir {
        let series = spec.scenarios.len() + spec.probes.len() + 1;
        let needed = report::space_needed(spec.planned_duration().as_secs() + 1, series);
        report::check_space(d, needed).map_err(SessionError::Preflight)?;
    }
    let spec = Arc::new(spec);
    let mut controllers = control::standard(&spec);
    if let Some(addr) = opts.metrics_addr {
        let endpoint = control::prometheus::PrometheusEndpoint::bind(addr, &spec)
            .map_err(|source| SessionError::MetricsAddr { addr, source })?;
        if opts.announce {
            if let Some(a) = endpoint.local_addr() {
                eprintln!("loadgate: metrics at http://{a}/metrics while the run goes");
            }
        }
        controllers.push(Box::new(endpoint));
    }
    let kept = opts.run.segment.map(|_| {
        let recorder = SliceRecorder::new();
        let kept = recorder.kept();
        controllers.push(Box::new(recorder));
        kept
    });
    if let Some(at) = opts.start_at {
        segment::wait_until(at, opts.announce, interrupt).await?;
    }
    let outcome = run::execute(
        spec.clone(),
        controllers,
        stack,
        &opts.run,
        interrupt.clone().cancelled_owned(),
    )
    .await?;
    let mut summary = Summary::build(
        &spec.name,
        &outcome.metrics,
        outcome.checks,
        outcome.sections,
        outcome.started_wall,
        outcome.stopped.as_ref(),
    );
    // A segment's manifest and slices, for the merge.
    let slices = kept.zip(opts.run.segment).map(|(k, seg)| {
        let kept = std::mem::replace(
            &mut *k.lock().unwrap_or_else(|p| p.into_inner()),
            Ok(Vec::new()),
        );
        let manifest = SegmentManifest::new(&spec, &info, seg, outcome.started_wall, opts.start_at);
        (manifest, kept)
    });
    summary.run = Some(info);
    let latency = outcome.metrics.scenario_latency();
    let run_report = RunReport {
        summary: &summary,
        timeline: &outcome.metrics.timeline,
        latency: &latency,
        baseline: None,
    };
    let judgement = Judgement::of(
        &summary,
        outcome.started_wall,
        outcome.stopped.as_ref(),
        &spec.report_formats,
    );
    let results = (&outcome.metrics, &judgement);
    let (written, dir, report_error) = match dir {
        None => (Vec::new(), None, None),
        Some(d) => match write_all(&d, &run_report, results, &spec.report_formats) {
            Ok(mut w) => match write_segment(&d, slices.as_ref()) {
                Ok(seg) => {
                    w.extend(seg);
                    (w, Some(d), None)
                }
                // The reports are there; the segment cannot be merged: the harness failed.
                Err(e) => (w, Some(d), Some(e)),
            },
            Err(e) => {
                tracing::error!(error = %e, "writing the reports");
                let (w, fallback) = write_fallback(&run_report, results, &spec.report_formats);
                (w, fallback, Some(e))
            }
        },
    };
    Ok(Finished {
        summary,
        written,
        dir,
        report_error,
    })
}

/// The reports of a run whose directory failed (full disk, unmounted, removed mid-run) go
/// to a fresh directory under the system temp dir instead, so the run is not lost.
fn write_fallback(
    run: &RunReport<'_>,
    results: (&RunMetrics, &Judgement),
    formats: &[ReportFormat],
) -> (Vec<PathBuf>, Option<PathBuf>) {
    let dir = match tempfile::Builder::new()
        .prefix("loadgate-reports-")
        .tempdir()
    {
        Ok(t) => t.keep(),
        Err(e) => {
            tracing::error!(error = %e, "creating a fallback report directory");
            return (Vec::new(), None);
        }
    };
    match write_all(&dir, run, results, formats) {
        Ok(w) => (w, Some(dir)),
        Err(e) => {
            tracing::error!(error = %e, "writing the reports to the fallback directory");
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(error = %e, dir = %dir.display(), "removing the fallback directory");
            }
            (Vec::new(), None)
        }
    }
}

/// The report files, then the stored results they can be regenerated from (`results/`).
fn write_all(
    dir: &Path,
    run: &RunReport<'_>,
    (metrics, judgement): (&RunMetrics, &Judgement),
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = report::write_reports(dir, run, formats)?;
    written.extend(report::results::store(dir, metrics, judgement)?);
    Ok(written)
}

/// A segment's manifest and slices beside its results (`results/`), for the merge; nothing
/// for a whole run.
fn write_segment(
    dir: &Path,
    segment: Option<&(SegmentManifest, Result<Vec<EncodedSlice>, KeepError>)>,
) -> Result<Vec<PathBuf>, ReportError> {
    let Some((manifest, slices)) = segment else {
        return Ok(Vec::new());
    };
    let slices = slices.as_ref().map_err(|e| {
        ReportError::Results(format!(
            "segment {}/{}: its seconds could not be kept for the merge: {e}",
            manifest.index, manifest.count
        ))
    })?;
    report::segment::store(dir, manifest, slices)
}

fn backend_name(b: StackBackend) -> &'static str {
    match b {
        StackBackend::Auto => "auto",
        StackBackend::Containers => "containers",
        StackBackend::Process => "process",
        StackBackend::External => "external",
    }
}

fn out_dir(out: &OutDir, plan_name: &str) -> Option<PathBuf> {
    match out {
        OutDir::Default => Some(default_out_dir(plan_name)),
        OutDir::At(p) => Some(p.clone()),
        OutDir::Nowhere => None,
    }
}

/// Create the report directory now, so an unwritable one fails before anything is sent.
fn prepare_dir(dir: Option<&Path>) -> Result<(), SessionError> {
    let Some(dir) = dir else { return Ok(()) };
    std::fs::create_dir_all(dir)
        .map_err(|source| ReportError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
        .map_err(SessionError::Preflight)?;
    // Prove it is writable (a read-only mount, a directory of someone else's).
    tempfile::NamedTempFile::new_in(dir)
        .map_err(|source| ReportError::Write {
            path: dir.to_path_buf(),
            source,
        })
        .map_err(SessionError::Preflight)?;
    Ok(())
}

/// `reports/<plan-name>-<timestamp>/`
pub fn default_out_dir(plan_name: &str) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

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
