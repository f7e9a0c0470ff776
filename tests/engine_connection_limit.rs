//! The open model against a target with a connection limit (nginx past its
//! `worker_connections` accepts and closes at once): the pool stops growing where the target
//! turns connections away, instead of keeping VUs whose every connection is reset.
//!
//! Set-up: the coordinated-omission server of `engine_coordinated_omission.rs` (answers at
//! once, except that requests arriving in [T0 + 1.0 s, T0 + 1.5 s) are held until the window
//! ends), over raw HTTP/1.1 with a limit of `LIMIT` open connections: a connection accepted
//! beyond it is closed before any response. 200 arrivals/s for 3.5 s from 2 VUs, `max_vus`
//! 400: after the stall the ~100 overdue arrivals grow the pool past the limit.
//!
//! Without the limit logic every VU beyond `LIMIT` stayed in the pool, free again at once
//! after each reset, so it took most later arrivals and reconnected for each: hundreds of
//! connections turned away after the burst. With it, the VUs turned away leave and the pool
//! holds below the limit: none after the burst.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{request, run, scenario, spec, TestServer};
use loadgate::spec::ExecutorSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: u64 = 8;

#[derive(Default)]
struct Stats {
    t0: OnceLock<Instant>,
    open: AtomicU64,
    turned_away: AtomicU64,
    /// Connections turned away 1.1 s after the stall (the burst is over).
    turned_away_late: AtomicU64,
}

fn limited_server(stats: Arc<Stats>) -> TestServer {
    TestServer::start(move |listener, _stop| async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if stats.open.load(Ordering::SeqCst) >= LIMIT {
                stats.turned_away.fetch_add(1, Ordering::SeqCst);
                if stats
                    .t0
                    .get()
                    .is_some_and(|t0| t0.elapsed() > Duration::from_millis(2600))
                {
                    stats.turned_away_late.fetch_add(1, Ordering::SeqCst);
                }
                drop(sock);
                continue;
            }
            stats.open.fetch_add(1, Ordering::SeqCst);
            tokio::task::spawn_local(serve_conn(sock, stats.clone()));
        }
    })
}

async fn serve_conn(mut sock: tokio::net::TcpStream, stats: Arc<Stats>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    'conn: loop {
        // One GET without a body: up to the blank line.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        buf.drain(..end);
        common::hold_in_stall_window(*stats.t0.get_or_init(Instant::now)).await;
        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        if sock.write_all(resp).await.is_err() {
            break;
        }
    }
    stats.open.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn the_pool_stops_growing_where_the_target_turns_connections_away() {
    let stats = Arc::new(Stats::default());
    let srv = limited_server(stats.clone());
    let exec = ExecutorSpec::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_millis(3500),
        pre_allocated_vus: 2,
        max_vus: 400,
    };
    let m = run(
        spec(
            &srv.url(),
            vec![scenario("limit", exec, request("GET", "/"))],
        ),
        1,
    );
    let st = m.aggregate(|_| true);
    let (turned, late) = (
        stats.turned_away.load(Ordering::SeqCst),
        stats.turned_away_late.load(Ordering::SeqCst),
    );
    eprintln!(
        "sent {}, failed {}, dropped {}, turned away {turned} ({late} after the burst)",
        st.requests,
        st.failed,
        m.total_dropped()
    );
    assert_eq!(st.requests + m.total_dropped(), 700);
    assert!(
        turned > 0,
        "the burst reached the limit: the test tests nothing"
    );
    assert_eq!(late, 0, "connections turned away after the burst");
    // The arrivals that failed are those of the burst's new connections, not the run's.
    assert!(st.failed <= 150, "{} failed", st.failed);
    assert!(
        st.requests - st.failed >= 500,
        "{} answered",
        st.requests - st.failed
    );
}
