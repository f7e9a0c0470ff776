//! Controllers unit-tested against scripted tick sequences (no engine, no network): the
//! thresholds controller aborts only after its delay and only on data, records the first
//! failing window of a windowed threshold, and keeps an aborted threshold failed; the SLO
//! controller puts a burn alert on the timeline at the second it fires.
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgate::control::slo::Slos;
use loadgate::control::threshold::Thresholds;
use loadgate::control::{Action, Controller, End, StartCtx, Stopped, Tick};
use loadgate::grammar::threshold::{parse_metric_key, ThresholdExpr};
use loadgate::metrics::recorder::Aggregator;
use loadgate::metrics::{
    ErrorKind, EventKind, RunMetrics, ScenarioInfo, SecondSlice, SeriesKey, SeriesStats, SourceKind,
};
use loadgate::spec::{
    BurnWindow, ExecutorSpec, HttpOptions, RunSpec, ScenarioSpec, Severity, Sli, SloSpec,
    ThresholdSpec,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn infos() -> Vec<ScenarioInfo> {
    vec![ScenarioInfo {
        name: "main".into(),
        kind: SourceKind::Scenario,
        executor: "constant-arrival-rate".into(),
        requests: vec!["GET /".into()],
        methods: vec!["GET".into()],
        ..Default::default()
    }]
}

fn run_spec(thresholds: Vec<ThresholdSpec>, slos: Vec<SloSpec>) -> RunSpec {
    let mut spec = RunSpec::new(
        "scripted",
        "http://127.0.0.1:1",
        HttpOptions::default(),
        vec![ScenarioSpec {
            name: "main".into(),
            executor: ExecutorSpec::ConstantVus {
                vus: 1,
                duration: Duration::from_secs(30),
            },
            start_after: Duration::ZERO,
            graceful_stop: Duration::ZERO,
            requests: vec![],
            tags: Default::default(),
            ledger: None,
            flow: None,
        }],
    );
    spec.thresholds = thresholds;
    spec.slos = slos;
    spec
}

fn threshold(key: &str, expr: &str, abort: bool, delay_s: u64) -> ThresholdSpec {
    let (metric, tags) = parse_metric_key(key).unwrap();
    ThresholdSpec {
        metric,
        tags,
        key: key.into(),
        expr: ThresholdExpr::parse(expr).unwrap(),
        abort_on_fail: abort,
        delay: Duration::from_secs(delay_s),
        min_samples: 1,
        runbook: None,
    }
}

/// `ok` successes at 5 ms and `failed` 500s at 400 ms, as one second's stats.
fn second_stats(ok: u64, failed: u64) -> Vec<(SeriesKey, SeriesStats)> {
    let key = |status, error| SeriesKey {
        scenario: 0,
        request: 0,
        status,
        error,
        variant: Default::default(),
    };
    let mut out = Vec::new();
    if ok > 0 {
        let mut s = SeriesStats::default();
        s.duration.record_n(5_000, ok).unwrap();
        s.service.record_n(5_000, ok).unwrap();
        s.requests = ok;
        out.push((key(200, None), s));
    }
    if failed > 0 {
        let mut s = SeriesStats::default();
        s.duration.record_n(400_000, failed).unwrap();
        s.service.record_n(400_000, failed).unwrap();
        s.requests = failed;
        s.failed = failed;
        out.push((key(500, Some(ErrorKind::Status5xx)), s));
    }
    out
}

/// Drives a controller through a script of seconds: `(ok, failed)` per second, one tick per
/// second, with the cumulative snapshot. Returns the actions of each tick.
struct Script {
    infos: Vec<ScenarioInfo>,
    cumulative: RunMetrics,
}

impl Script {
    fn new() -> Script {
        Script {
            infos: infos(),
            cumulative: RunMetrics {
                scenarios: infos(),
                ..Default::default()
            },
        }
    }

    fn start(&self, c: &mut dyn Controller, spec: &Arc<RunSpec>) {
        let agg = Arc::new(Aggregator::new(
            Instant::now(),
            self.infos.clone(),
            vec![Duration::ZERO],
            1,
        ));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let actions = c.on_start(&StartCtx {
            spec,
            origin: Instant::now(),
            aggregator: &agg,
            engine_threads: 1,
            infos: &self.infos,
            tasks: &tasks,
            stop: &stop,
            stack: None,
        });
        assert!(actions.is_empty());
    }

    fn second(&mut self, c: &mut dyn Controller, second: u64, ok: u64, failed: u64) -> Vec<Action> {
        let series = second_stats(ok, failed);
        for (k, s) in &series {
            self.cumulative.series.entry(*k).or_default().merge(s);
        }
        self.cumulative.elapsed = Duration::from_secs(second + 1);
        let slice = SecondSlice {
            second,
            series,
            dropped: vec![0],
        };
        c.on_tick(&Tick {
            at: Duration::from_secs(second + 1),
            snapshot: &self.cumulative,
            seconds: std::slice::from_ref(&slice),
            events: &[],
            last: false,
        })
    }
}

#[test]
fn abort_on_fail_waits_for_its_delay_and_stops_once() {
    let spec = Arc::new(run_spec(
        vec![threshold("http_req_failed", "rate<0.05", true, 5)],
        vec![],
    ));
    let mut c = Thresholds::new(&spec);
    let mut s = Script::new();
    s.start(&mut c, &spec);
    // Seconds 0-1 fail hard (before the delay): no abort. Then clean traffic dilutes the rate
    // below 5% ... until second 8 fails everything again.
    let mut stops = Vec::new();
    for second in 0..12u64 {
        let (ok, failed) = match second {
            0 | 1 => (0, 10),
            8 => (0, 400),
            _ => (100, 0),
        };
        for a in s.second(&mut c, second, ok, failed) {
            if let Action::Stop(why) = a {
                stops.push((second, why));
            }
        }
    }
    // At 5 s (the delay) 20 of 320 failed (6.25%): abort then, and only once.
    assert_eq!(stops.len(), 1, "{stops:?}");
    let (at, why) = &stops[0];
    assert_eq!(*at, 4, "the tick at 5 s is the first past the delay");
    match why {
        Stopped::Aborted { check, observed } => {
            assert_eq!(check, "http_req_failed rate<0.05");
            assert_eq!(observed, "rate=0.0625 over the first 5s");
        }
        other => panic!("{other:?}"),
    }
    // The run then ends with data that would pass: the threshold stays failed.
    let mut clean = s.cumulative.clone();
    clean.series.retain(|k, _| k.error.is_none());
    clean
        .series
        .entry(SeriesKey {
            scenario: 0,
            request: 0,
            status: 500,
            error: Some(ErrorKind::Status5xx),
            variant: Default::default(),
        })
        .or_default()
        .requests = 1;
    let done = c.finish(&End {
        metrics: &clean,
        stopped: Some(&stops[0].1),
    });
    assert!(!done.checks[0].passed);
    assert_eq!(
        done.checks[0].observed,
        "rate=0.0625 over the first 5s (when aborted)"
    );
}

#[test]
fn no_data_never_aborts_but_never_passes() {
    let spec = Arc::new(run_spec(
        vec![threshold(
            "http_req_duration{scenario:main}",
            "p(95)<100",
            true,
            0,
        )],
        vec![],
    ));
    let mut c = Thresholds::new(&spec);
    let mut s = Script::new();
    s.start(&mut c, &spec);
    for second in 0..3 {
        assert!(s.second(&mut c, second, 0, 0).is_empty());
    }
    let done = c.finish(&End {
        metrics: &s.cumulative,
        stopped: None,
    });
    assert!(!done.checks[0].passed);
    assert_eq!(done.checks[0].observed, "no data");
}

#[test]
fn a_windowed_threshold_records_its_first_failing_window() {
    let spec = Arc::new(run_spec(
        vec![
            threshold("http_req_duration", "p(95)<250 over 3s", false, 0),
            threshold("http_req_duration", "p(95)<250", false, 0),
        ],
        vec![],
    ));
    let mut c = Thresholds::new(&spec);
    let mut s = Script::new();
    s.start(&mut c, &spec);
    let mut breaches = Vec::new();
    for second in 0..20 {
        let failed = if second == 10 { 30 } else { 0 };
        for a in s.second(&mut c, second, 100, failed) {
            if let Action::Record(EventKind::ThresholdBreach {
                window_start_s,
                window_end_s,
                ..
            }) = a
            {
                breaches.push((second, window_start_s, window_end_s));
            }
        }
    }
    // The window 8-11 holds 30 slow of 330 (9% > 5%): the first to fail, recorded once, at the
    // tick that delivered second 10.
    assert_eq!(breaches, vec![(10, 8.0, 11.0)]);
    let done = c.finish(&End {
        metrics: &s.cumulative,
        stopped: None,
    });
    assert!(!done.checks[0].passed);
    assert!(
        done.checks[0]
            .observed
            .contains("in 8s-11s (first of 3 failing of 18 windows)"),
        "{}",
        done.checks[0].observed
    );
    assert!(
        done.checks[1].passed,
        "30 slow of 2030 over the whole run: {}",
        done.checks[1].observed
    );
}

#[test]
fn the_slo_controller_records_burn_alerts_when_they_fire() {
    let slo = SloSpec {
        name: "availability".into(),
        description: None,
        objective: 0.999,
        metric: "http_req_failed".into(),
        tags: vec![],
        key: "http_req_failed".into(),
        sli: Sli::Availability,
        burn: vec![BurnWindow {
            long: Duration::from_secs(5),
            short: Duration::from_secs(1),
            factor: 14.4,
            severity: Severity::Page,
            scaled_from: None,
        }],
        min_samples: 1,
        runbook: None,
    };
    let spec = Arc::new(run_spec(vec![], vec![slo]));
    let mut c = Slos::new(&spec);
    let mut s = Script::new();
    s.start(&mut c, &spec);
    let mut alerts = Vec::new();
    for second in 0..15 {
        // 3% errors from second 6 to 9.
        let failed = if (6..10).contains(&second) { 3 } else { 0 };
        for a in s.second(&mut c, second, 100 - failed, failed) {
            if let Action::Record(k) = a {
                alerts.push((second, k));
            }
        }
    }
    // Second 6: long window 3/500 = 0.6% -> 6x; second 7: 6/500 = 1.2% -> 12x; second 8:
    // 9/500 = 1.8% -> 18x > 14.4 with the short window at 3% -> 30x: fires at second 8.
    let (at, first) = &alerts[0];
    assert_eq!(*at, 8);
    match first {
        EventKind::BurnAlert {
            slo,
            long_s,
            short_s,
            burn_long,
            burn_short,
            ..
        } => {
            assert_eq!((slo.as_str(), *long_s, *short_s), ("availability", 5, 1));
            assert!((burn_long - 18.0).abs() < 1e-6, "{burn_long}");
            assert!((burn_short - 30.0).abs() < 1e-6, "{burn_short}");
        }
        other => panic!("{other:?}"),
    }
    assert!(alerts
        .iter()
        .any(|(_, k)| matches!(k, EventKind::BurnResolved { .. })));
    let done = c.finish(&End {
        metrics: &s.cumulative,
        stopped: None,
    });
    assert!(!done.checks[0].passed);
    assert!(
        done.checks[0]
            .observed
            .starts_with("page burn 18x over 5s and 30x over 1s > 14.4x at 9s"),
        "{}",
        done.checks[0].observed
    );
}
