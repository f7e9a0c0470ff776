//! The load engine: pacers, executors, HTTP clients, request templating, and the worker
//! threads that run them.
//!
//! [`start`] runs `threads` OS threads, each with its own tokio current-thread runtime and a
//! `LocalSet`. Every worker runs every scenario on its own lane of the work (thread k of N
//! takes arrivals, VUs and shared iterations with index ≡ k mod N; `segment` splits the same
//! index space further across processes, see [`executor::Lane`]). VUs are local tasks owning
//! their connection; samples go into the worker's [`Recorder`], flushed once per second into
//! the shared [`Aggregator`]. Nothing on the per-request path takes a lock, sends on a channel
//! or (for requests without placeholders on HTTP/1.1) allocates.
pub mod control;
pub mod executor;
pub mod http;
pub mod pacer;
pub mod request;

use std::cell::{Cell, RefCell};
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::metrics::recorder::{Aggregator, Recorder};
use crate::metrics::{EventKind, RunMetrics};
use crate::spec::RunSpec;
use control::EngineControl;
use executor::{Lane, ScenarioCtx};
use http::pool::H2Pool;
use http::Target;
use request::RequestSource;

/// How the engine runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Worker threads (each a current-thread tokio runtime). At least 1.
    pub threads: usize,
    /// This process's part of a distributed run: `(index, count)`, 0-based index.
    pub segment: Option<(u32, u32)>,
    /// Keep every finalized second for [`Aggregator::take_seconds`] (the run clock takes them
    /// once per tick for windowed thresholds and SLOs; nobody else should turn it on).
    pub slices: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            segment: None,
            slices: false,
        }
    }
}

/// Why the engine could not run.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("invalid target '{url}': {reason}")]
    Target { url: String, reason: String },
    #[error("cannot resolve target host '{host}': {reason}")]
    Resolve { host: String, reason: String },
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    #[error("scenario '{scenario}' uses feeder '{feeder}', which the plan does not define")]
    UnknownFeeder { scenario: String, feeder: String },
    #[error("scenario '{scenario}' uses column '{column}' of feeder '{feeder}', which has no such column")]
    UnknownColumn {
        scenario: String,
        feeder: String,
        column: String,
    },
    #[error("scenario '{scenario}' uses {{{{{name}}}}}, a captured value: only probe chains capture values")]
    UnknownVariable { scenario: String, name: String },
    #[error("too many {what} ({n}); at most 65535 are supported")]
    TooMany { what: &'static str, n: usize },
    #[error("invalid segment {index}/{count}: the index must be below the count")]
    Segment { index: u32, count: u32 },
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("worker thread {0} panicked")]
    Panicked(usize),
}

/// A running load; [`EngineHandle::finish`] waits for it.
pub struct EngineHandle {
    aggregator: Arc<Aggregator>,
    control: Arc<EngineControl>,
    started_at: Instant,
    threads: Vec<std::thread::JoinHandle<()>>,
    engine_threads: usize,
}

impl EngineHandle {
    /// The live aggregator (for [`Aggregator::snapshot`]).
    pub fn aggregator(&self) -> Arc<Aggregator> {
        self.aggregator.clone()
    }

    /// Rate and weight changes for running scenarios.
    pub fn control(&self) -> Arc<EngineControl> {
        self.control.clone()
    }

    /// The run clock's origin (scenario `start_after` and all event offsets count from it).
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// Worker threads (the aggregator's engine recorders; probe recorders come after them).
    pub fn threads(&self) -> usize {
        self.engine_threads
    }

    /// Wait for every worker and return the exact final metrics. With probes in the spec, use
    /// [`EngineHandle::join`] and finish the aggregator once the probes have flushed.
    pub async fn finish(self) -> Result<RunMetrics, EngineError> {
        let aggregator = self.aggregator.clone();
        self.join().await?;
        Ok(aggregator.finish())
    }

    /// Wait for every worker thread (their recorders have flushed when this returns).
    pub async fn join(self) -> Result<(), EngineError> {
        let EngineHandle { threads, .. } = self;
        let joined = tokio::task::spawn_blocking(move || {
            let mut panicked = None;
            for (i, t) in threads.into_iter().enumerate() {
                if t.join().is_err() && panicked.is_none() {
                    panicked = Some(i);
                }
            }
            panicked
        })
        .await
        .map_err(|_| EngineError::Panicked(usize::MAX))?;
        if let Some(i) = joined {
            return Err(EngineError::Panicked(i));
        }
        Ok(())
    }
}

/// Resolve the target URL.
pub fn resolve_target(spec: &RunSpec) -> Result<Target, EngineError> {
    resolve_url(spec, &spec.target)
}

/// The targets of the scenarios loadgate splits between two targets itself (a canary's
/// `split.targets`): baseline and canary, resolved once.
pub struct SplitTargets {
    pub baseline: Arc<Target>,
    pub canary: Arc<Target>,
}

/// Resolve a canary's split targets, if the run has them.
pub fn resolve_split(spec: &RunSpec) -> Result<Option<SplitTargets>, EngineError> {
    let Some(t) = spec.canary.as_ref().and_then(|c| c.split.targets()) else {
        return Ok(None);
    };
    Ok(Some(SplitTargets {
        baseline: Arc::new(resolve_url(spec, &t.baseline)?),
        canary: Arc::new(resolve_url(spec, &t.canary)?),
    }))
}

/// Resolve a base URL with the run's client options.
pub fn resolve_url(spec: &RunSpec, target: &str) -> Result<Target, EngineError> {
    let bad = |reason: &str| EngineError::Target {
        url: target.to_string(),
        reason: reason.to_string(),
    };
    let url = url::Url::parse(target).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "http" => "http",
        "https" => "https",
        _ => return Err(bad("the scheme must be http or https")),
    };
    let host = url
        .host_str()
        .ok_or_else(|| bad("missing host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad("missing port"))?;
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<_> = (bare.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| EngineError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(EngineError::Resolve {
            host,
            reason: "no addresses".into(),
        });
    }
    let (tls, server_name) = if scheme == "https" {
        let cfg = http::tls::client_config(spec.http.insecure, spec.http.version)
            .map_err(|e| EngineError::Tls(e.to_string()))?;
        let name = rustls::pki_types::ServerName::try_from(bare.clone())
            .map_err(|e| EngineError::Tls(format!("server name '{bare}': {e}")))?;
        (Some(cfg), Some(name))
    } else {
        (None, None)
    };
    Ok(Target {
        scheme,
        host,
        authority,
        addrs,
        base_path: url.path().trim_end_matches('/').to_string(),
        version: spec.http.version,
        timeout: spec.http.timeout,
        max_body: spec.http.max_body,
        tls,
        server_name,
    })
}

/// Raise this process's open-files limit (soft) to its hard limit, so every VU's connection
/// gets a descriptor: the usual soft limit of 1024 is far below what an open model holding a
/// server stall needs. Returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("could not read the open-files limit: {e}");
            return 0;
        }
    };
    if soft < hard {
        // Raising the soft limit up to the hard one needs no privilege.
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return hard,
            Err(e) => tracing::warn!("could not raise the open-files limit from {soft}: {e}"),
        }
    }
    soft
}

/// Start the load. Returns at once; the run proceeds on its own threads. Cancelling `stop`
/// ends it gracefully: no new iterations, in-flight ones get up to the request timeout.
pub fn start(
    spec: Arc<RunSpec>,
    opts: EngineOptions,
    stop: CancellationToken,
) -> Result<EngineHandle, EngineError> {
    if spec.scenarios.len() > u16::MAX as usize {
        return Err(EngineError::TooMany {
            what: "scenarios",
            n: spec.scenarios.len(),
        });
    }
    if let Some(s) = spec
        .scenarios
        .iter()
        .find(|s| s.requests.len() > u16::MAX as usize)
    {
        return Err(EngineError::TooMany {
            what: "requests in a scenario",
            n: s.requests.len(),
        });
    }
    if let Some((index, count)) = opts.segment {
        if index >= count {
            return Err(EngineError::Segment { index, count });
        }
    }
    let fds = raise_fd_limit();
    let vus: u64 = spec
        .scenarios
        .iter()
        .map(|s| s.executor.peak_vus() as u64)
        .sum();
    if fds > 0 && vus + 64 > fds {
        tracing::warn!(
            vus,
            open_files_limit = fds,
            "the run may need more connections than this process may open files; raise `ulimit -n`"
        );
    }
    let target = Arc::new(resolve_target(&spec)?);
    let split = resolve_split(&spec)?.map(Arc::new);
    // Bind every scenario's templates once up front, so feeder errors surface before the run.
    for sc in &spec.scenarios {
        RequestSource::new(&spec, sc, &target)?;
        if let (Some(t), Some(_)) = (&split, spec.target_split_for(&sc.name)) {
            RequestSource::new(&spec, sc, &t.baseline)?;
            RequestSource::new(&spec, sc, &t.canary)?;
        }
    }
    let threads = opts.threads.max(1);
    let origin = Instant::now();
    let starts = spec
        .scenarios
        .iter()
        .map(|s| s.start_after)
        .chain(spec.probes.iter().map(|p| p.from))
        .collect();
    let aggregator = Arc::new(Aggregator::new(
        origin,
        crate::metrics::scenario_infos(&spec),
        starts,
        threads,
    ));
    if opts.slices {
        aggregator.keep_slices();
    }
    let control = Arc::new(EngineControl::new(&spec));
    let mut handles = Vec::with_capacity(threads);
    for k in 0..threads {
        let spec = spec.clone();
        let target = target.clone();
        let split = split.clone();
        let agg = aggregator.clone();
        let stop = stop.child_token();
        let control = control.clone();
        let lane = Lane::new(k, threads, opts.segment);
        let h = std::thread::Builder::new()
            .name(format!("loadgate-worker-{k}"))
            .spawn(move || {
                worker(
                    (k, threads),
                    lane,
                    spec,
                    target,
                    split,
                    agg,
                    control,
                    stop,
                    origin,
                )
            })
            .map_err(EngineError::Thread)?;
        handles.push(h);
    }
    Ok(EngineHandle {
        aggregator,
        control,
        started_at: origin,
        threads: handles,
        engine_threads: threads,
    })
}

/// One worker thread: every scenario's lane `lane`, on a current-thread runtime.
#[allow(clippy::too_many_arguments)]
fn worker(
    (k, threads): (usize, usize),
    lane: Lane,
    spec: Arc<RunSpec>,
    target: Arc<Target>,
    split: Option<Arc<SplitTargets>>,
    agg: Arc<Aggregator>,
    control: Arc<EngineControl>,
    stop: CancellationToken,
    origin: Instant,
) {
    let sources = spec.scenarios.len() + spec.probes.len();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            agg.push_event(EventKind::WorkerError {
                reason: format!("worker {k}: cannot build runtime: {e}"),
            });
            for i in 0..spec.scenarios.len() {
                agg.scenario_finished(i);
            }
            Recorder::new(k, origin, sources).finish(&agg);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let recorder = Rc::new(RefCell::new(Recorder::new(k, origin, sources)));
        let stopped = Rc::new(Cell::new(false));
        let watcher = {
            let (stop, stopped) = (stop.clone(), stopped.clone());
            tokio::task::spawn_local(async move {
                stop.cancelled().await;
                stopped.set(true);
            })
        };
        let ticker = {
            let (recorder, agg) = (recorder.clone(), agg.clone());
            tokio::task::spawn_local(async move {
                let mut second = 1u64;
                loop {
                    let at = origin + Duration::from_secs(second) + Duration::from_millis(20);
                    tokio::time::sleep_until(at.into()).await;
                    let now = Instant::now();
                    recorder.borrow_mut().tick(&agg, now);
                    second = now.saturating_duration_since(origin).as_secs() + 1;
                }
            })
        };
        let mut scenarios = Vec::new();
        for (i, sc) in spec.scenarios.iter().enumerate() {
            // A scenario split between two targets sends to the baseline's by default.
            let split = split
                .as_ref()
                .filter(|_| spec.target_split_for(&sc.name).is_some());
            let target = match split {
                Some(t) => t.baseline.clone(),
                None => target.clone(),
            };
            let bind = |t: &Target| match RequestSource::new(&spec, sc, t) {
                Ok(s) => s,
                Err(_) => unreachable!("checked in start()"),
            };
            let source = bind(&target);
            let schedule = executor::schedule_for(&sc.executor, lane, spec.http.max_connections);
            let mut ctx = ScenarioCtx::new(
                i,
                sc,
                origin,
                spec.http.timeout,
                schedule,
                source,
                target.clone(),
                recorder.clone(),
                agg.clone(),
                stop.clone(),
                stopped.clone(),
                control.scenario(i),
            );
            ctx.split = spec.split_for(&sc.name).map(Arc::new);
            // HTTP/2: this worker's VUs share its part of the connections.
            let pool =
                |t: &Target| http::may_speak_h2(t).then(|| H2Pool::new(&spec.http.h2, k, threads));
            ctx.h2 = pool(&target);
            ctx.alt = split.map(|t| executor::AltTarget {
                target: t.canary.clone(),
                source: bind(&t.canary),
                h2: pool(&t.canary),
            });
            ctx.take_values(spec.values_for(&sc.name));
            let ctx = Rc::new(ctx);
            scenarios.push(tokio::task::spawn_local(executor::run_scenario(ctx)));
        }
        for (i, s) in scenarios.into_iter().enumerate() {
            if s.await.is_err() {
                agg.push_event(EventKind::WorkerError {
                    reason: format!("worker {k}: scenario {i} task failed"),
                });
                agg.scenario_finished(i);
            }
        }
        ticker.abort();
        watcher.abort();
        recorder.borrow_mut().finish(&agg);
    });
}
