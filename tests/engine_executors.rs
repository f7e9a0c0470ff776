//! Each executor's counts and rates against an in-process server, plus the split of work
//! over worker threads and segments.
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::{request, run, run_with, scenario, spec, TestServer};
use loadgate::engine::EngineOptions;
use loadgate::grammar::template::Template;
use loadgate::metrics::EventKind;
use loadgate::spec::{ExecutorSpec, RateStage, VuStage};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Seen {
    seqs: Vec<u64>,
    vus: BTreeSet<String>,
}

/// `/` answers "ok"; `/seq/{n}` records n and the `x-vu` header.
fn server() -> (TestServer, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/seq/{n}",
            get(
                |State(s): State<Arc<Mutex<Seen>>>, Path(n): Path<u64>, h: HeaderMap| async move {
                    let mut s = s.lock().unwrap();
                    s.seqs.push(n);
                    if let Some(v) = h.get("x-vu") {
                        s.vus.insert(v.to_str().unwrap().to_string());
                    }
                    "ok"
                },
            ),
        )
        .with_state(seen.clone());
    (TestServer::axum(app), seen)
}

fn seq_request() -> loadgate::spec::RequestSpec {
    let mut r = request("GET", "/seq/{{seq}}");
    r.headers
        .push(("x-vu".into(), Template::parse("{{vu}}").unwrap()));
    r
}

#[test]
fn constant_arrival_rate_sends_the_rate() {
    let (srv, _) = server();
    let exec = ExecutorSpec::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_secs(3),
        pre_allocated_vus: 10,
        max_vus: 50,
    };
    let t0 = Instant::now();
    let m = run(
        spec(&srv.url(), vec![scenario("car", exec, request("GET", "/"))]),
        2,
    );
    let took = t0.elapsed();
    let sent = m.total_requests();
    assert_eq!(
        sent + m.total_dropped(),
        600,
        "every arrival is sent or dropped"
    );
    assert!(sent >= 570, "sent {sent}");
    assert_eq!(m.aggregate(|k| k.error.is_some()).requests, 0);
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Per-second rows: about 200 per full second.
    let mid: Vec<_> = m.timeline.iter().filter(|r| r.second == 1).collect();
    assert_eq!(mid.len(), 1);
    assert!((150..=250).contains(&mid[0].requests), "{:?}", mid[0]);
    assert_eq!(m.timeline.iter().map(|r| r.requests).sum::<u64>(), sent);
    let kinds: Vec<_> = m.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["scenario_start", "scenario_end"]);
    assert_eq!(m.scenarios[0].executor, "constant-arrival-rate");
}

#[test]
fn ramping_arrival_rate_matches_the_integral() {
    let (srv, seen) = server();
    // 0 → 200/s over 2 s (200 arrivals), then 200/s for 1 s (200): 400 in total.
    let exec = ExecutorSpec::RampingArrivalRate {
        start_rate: 0.0,
        stages: vec![
            RateStage {
                target: 200.0,
                duration: Duration::from_secs(2),
            },
            RateStage {
                target: 200.0,
                duration: Duration::from_secs(1),
            },
        ],
        pre_allocated_vus: 5,
        max_vus: 50,
    };
    let m = run(
        spec(&srv.url(), vec![scenario("rar", exec, seq_request())]),
        2,
    );
    let sent = m.total_requests();
    assert_eq!(sent + m.total_dropped(), 400);
    assert!(sent >= 380, "sent {sent}");
    // The ramp: the first second gets a quarter of the ramp's arrivals (A(1) = 50).
    let first = m
        .timeline
        .iter()
        .find(|r| r.second == 0)
        .map(|r| r.requests)
        .unwrap_or(0);
    assert!((30..=70).contains(&first), "first second {first}");
    // seq is the dense arrival index across both threads.
    let mut seqs = seen.lock().unwrap().seqs.clone();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len() as u64, sent);
    assert!(*seqs.last().unwrap() < 400);
}

#[test]
fn constant_vus_runs_for_its_duration() {
    let (srv, seen) = server();
    let exec = ExecutorSpec::ConstantVus {
        vus: 3,
        duration: Duration::from_secs(1),
    };
    let t0 = Instant::now();
    let m = run(
        spec(&srv.url(), vec![scenario("cv", exec, seq_request())]),
        2,
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        m.total_requests() > 100,
        "closed model runs at full speed: {}",
        m.total_requests()
    );
    assert_eq!(
        seen.lock().unwrap().vus,
        BTreeSet::from(["0".into(), "1".into(), "2".into()])
    );
    assert_eq!(m.total_dropped(), 0);
}

#[test]
fn ramping_vus_reaches_its_target() {
    let (srv, seen) = server();
    let exec = ExecutorSpec::RampingVus {
        start_vus: 0,
        stages: vec![
            VuStage {
                target: 4,
                duration: Duration::from_millis(800),
            },
            VuStage {
                target: 4,
                duration: Duration::from_millis(700),
            },
        ],
    };
    let m = run(
        spec(&srv.url(), vec![scenario("rv", exec, seq_request())]),
        2,
    );
    assert!(m.total_requests() > 50);
    let vus = seen.lock().unwrap().vus.clone();
    assert_eq!(
        vus,
        BTreeSet::from(["0".into(), "1".into(), "2".into(), "3".into()])
    );
}

#[test]
fn per_vu_iterations_is_exact() {
    let (srv, seen) = server();
    let exec = ExecutorSpec::PerVuIterations {
        vus: 3,
        iterations: 17,
        max_duration: Duration::from_secs(10),
    };
    let m = run(
        spec(&srv.url(), vec![scenario("pvi", exec, seq_request())]),
        2,
    );
    assert_eq!(m.total_requests(), 51);
    assert_eq!(seen.lock().unwrap().vus.len(), 3);
}

#[test]
fn shared_iterations_is_exact_with_dense_seq() {
    let (srv, seen) = server();
    let exec = ExecutorSpec::SharedIterations {
        vus: 5,
        iterations: 123,
        max_duration: Duration::from_secs(10),
    };
    let m = run(
        spec(&srv.url(), vec![scenario("si", exec, seq_request())]),
        3,
    );
    assert_eq!(m.total_requests(), 123);
    let mut seqs = seen.lock().unwrap().seqs.clone();
    seqs.sort();
    assert_eq!(seqs, (0..123).collect::<Vec<_>>());
}

#[test]
fn shared_iterations_with_fewer_vus_than_threads() {
    let (srv, _) = server();
    let exec = ExecutorSpec::SharedIterations {
        vus: 1,
        iterations: 40,
        max_duration: Duration::from_secs(10),
    };
    let m = run(
        spec(&srv.url(), vec![scenario("si", exec, request("GET", "/"))]),
        4,
    );
    assert_eq!(m.total_requests(), 40);
}

#[test]
fn segments_split_the_same_index_space() {
    let (srv, seen) = server();
    let exec = ExecutorSpec::SharedIterations {
        vus: 4,
        iterations: 101,
        max_duration: Duration::from_secs(10),
    };
    let mut total = 0;
    for index in 0..2 {
        let s = spec(
            &srv.url(),
            vec![scenario("seg", exec.clone(), seq_request())],
        );
        let opts = EngineOptions {
            threads: 2,
            segment: Some((index, 2)),
            slices: false,
        };
        total += run_with(s, opts, CancellationToken::new()).total_requests();
    }
    assert_eq!(total, 101);
    let mut seqs = seen.lock().unwrap().seqs.clone();
    seqs.sort();
    assert_eq!(seqs, (0..101).collect::<Vec<_>>());
}

#[test]
fn scenarios_start_after_their_offset() {
    let (srv, _) = server();
    let mut late = scenario(
        "late",
        ExecutorSpec::PerVuIterations {
            vus: 1,
            iterations: 5,
            max_duration: Duration::from_secs(5),
        },
        request("GET", "/"),
    );
    late.start_after = Duration::from_millis(700);
    let early = scenario(
        "early",
        ExecutorSpec::PerVuIterations {
            vus: 1,
            iterations: 5,
            max_duration: Duration::from_secs(5),
        },
        request("GET", "/"),
    );
    let m = run(spec(&srv.url(), vec![early, late]), 1);
    assert_eq!(m.total_requests(), 10);
    let start_late = m
        .events
        .iter()
        .find(
            |e| matches!(&e.kind, EventKind::ScenarioStart { scenario, .. } if scenario == "late"),
        )
        .expect("start event of 'late'");
    assert!(
        start_late.at >= Duration::from_millis(690),
        "{:?}",
        start_late.at
    );
}

#[test]
fn stop_token_ends_the_run_with_metrics() {
    let (srv, _) = server();
    let exec = ExecutorSpec::ConstantVus {
        vus: 2,
        duration: Duration::from_secs(30),
    };
    let stop = CancellationToken::new();
    let s2 = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        s2.cancel();
    });
    let t0 = Instant::now();
    let m = run_with(
        spec(&srv.url(), vec![scenario("cv", exec, request("GET", "/"))]),
        EngineOptions {
            threads: 1,
            segment: None,
            slices: false,
        },
        stop,
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(m.total_requests() > 10);
    assert!(m
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::ScenarioEnd { .. })));
}
