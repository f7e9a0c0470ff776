//! Coordinated omission: the open model measures `duration` from the *intended* send time, so
//! a stall that keeps the generator from sending shows up in `duration`, while `service`
//! (actual send → last byte) stays short.
//!
//! Set-up: one worker thread, 200 arrivals/s for 3.5 s (700 arrivals), starting with only 2
//! VUs. The server answers at once, except that every request *arriving* in the window
//! [T0 + 1.0 s, T0 + 1.5 s) (T0 = its first request) is held until the window ends.
//!
//! What happens: at ~1.0 s both VUs send into the window and are stuck for ~500 ms, so no VU
//! is free and nothing else is sent during the stall (the generator itself is blocked, as a
//! closed-loop tool would be). When they come back at ~1.5 s, the ~100 arrivals that were due
//! during the stall are overdue; the pool may grow (max_vus is large), so they are sent late
//! in a burst, each growing the pool by one VU. Those requests reach a server that is no
//! longer stalled: short `service`, but `duration` = lateness (up to 500 ms) + service.
//!
//! Assertions (generous): with ~700 samples, the top 1% (7) of `duration` are the most
//! overdue arrivals (≥ ~465 ms late), so p99(duration) ≥ 400 ms. Only the 2 stuck requests
//! have a long `service` (< 1% of samples), so p99(service) stays well below 200 ms.
//! A wrk-style closed measurement would have reported only those 2 slow requests.
//!
//! With `max_vus` equal to the 2 pre-allocated VUs the pool cannot grow: the overdue
//! arrivals are dropped (k6's dropped_iterations) instead of sent, and counted.
mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::{request, run, scenario, spec, TestServer};
use loadgate::spec::ExecutorSpec;

fn stalling_server() -> TestServer {
    let t0: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let app = Router::new().route(
        "/",
        get(move || {
            let t0 = t0.clone();
            async move {
                common::hold_in_stall_window(*t0.get_or_init(Instant::now)).await;
                "ok"
            }
        }),
    );
    TestServer::axum(app)
}

fn exec(max_vus: u32) -> ExecutorSpec {
    ExecutorSpec::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_millis(3500),
        pre_allocated_vus: 2,
        max_vus,
    }
}

#[test]
fn duration_includes_the_wait_service_does_not() {
    let srv = stalling_server();
    let m = run(
        spec(
            &srv.url(),
            vec![scenario("co", exec(400), request("GET", "/"))],
        ),
        1,
    );
    let st = m.aggregate(|_| true);
    assert_eq!(st.requests + m.total_dropped(), 700);
    assert_eq!(
        m.total_dropped(),
        0,
        "the pool may grow, so nothing is dropped"
    );
    assert_eq!(st.failed, 0);
    let p99_duration = st.duration.value_at_quantile(0.99);
    let p99_service = st.service.value_at_quantile(0.99);
    let max_service = st.service.max();
    assert!(p99_duration >= 400_000, "p99 duration {p99_duration} µs");
    assert!(p99_service < 200_000, "p99 service {p99_service} µs");
    assert!(
        max_service >= 400_000,
        "the stuck requests' own service time is long: {max_service} µs"
    );
    // The burst after the stall: many requests at least 250 ms late.
    let late = st.duration.count_between(250_000, u64::MAX);
    eprintln!("p99 duration {p99_duration} µs, p99 service {p99_service} µs, {late} late");
    assert!(late >= 30, "{late} requests at least 250 ms late");
}

#[test]
fn overdue_arrivals_are_dropped_when_the_pool_is_full() {
    let srv = stalling_server();
    let m = run(
        spec(
            &srv.url(),
            vec![scenario("co", exec(2), request("GET", "/"))],
        ),
        1,
    );
    let sent = m.total_requests();
    let dropped = m.total_dropped();
    eprintln!("sent {sent}, dropped {dropped}");
    assert_eq!(sent + dropped, 700);
    assert!((50..=120).contains(&dropped), "dropped {dropped}");
    assert_eq!(m.scenarios[0].dropped, dropped);
}
