//! The TCP fault proxy and toxiproxy's toxics (src/fault/proxy): each toxic does to a real
//! client what it says (latency within 10 % of the set value, a reset seen as a reset, a
//! timeout as a timeout, down refuses), on new and on already open connections.
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgate::fault::proxy::Proxy;
use loadgate::spec::fault::{NetworkFault, Toxic, ToxicKind, ToxicStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// An echo server on 127.0.0.1:0 (stops with the test's runtime).
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that writes `hello` and closes.
async fn hello_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"hello").await;
        }
    });
    addr
}

fn proxy_to(upstream: SocketAddr) -> Proxy {
    Proxy::start("test", "127.0.0.1:0".parse().unwrap(), upstream).unwrap()
}

async fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.listen_addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One echo round trip of `n` bytes; returns its time.
async fn round_trip(s: &mut TcpStream, n: usize) -> Duration {
    let msg = vec![7u8; n];
    let t = Instant::now();
    s.write_all(&msg).await.unwrap();
    let mut got = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .expect("echo within 10 s")
        .unwrap();
    assert_eq!(got, msg);
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn passes_bytes_both_ways_and_counts_them() {
    let p = proxy_to(echo_server().await);
    let mut s = connect(&p).await;
    let rtt = round_trip(&mut s, 100_000).await;
    assert!(rtt < Duration::from_secs(2), "{rtt:?}");
    let st = p.handle().stats();
    assert_eq!(st.accepted, 1);
    assert_eq!(st.bytes_upstream, 100_000);
    assert_eq!(st.bytes_downstream, 100_000);
}

#[tokio::test]
async fn latency_is_within_ten_percent_of_the_set_value_on_an_open_connection() {
    let p = proxy_to(echo_server().await);
    // Opened before the toxic: pooled connections must get the fault too.
    let mut s = connect(&p).await;
    round_trip(&mut s, 10).await;
    let h = p.handle();
    let id = h.add(Toxic::new(ToxicKind::Latency {
        latency: MS(200),
        jitter: Duration::ZERO,
    }));
    let mut rtts = Vec::new();
    for _ in 0..5 {
        rtts.push(round_trip(&mut s, 10).await);
    }
    let m = median(rtts.clone());
    assert!(
        m >= MS(180) && m <= MS(220),
        "median {m:?} of {rtts:?}, set 200 ms"
    );
    // Upstream latency adds to it.
    let up = h.add(
        Toxic::new(ToxicKind::Latency {
            latency: MS(100),
            jitter: Duration::ZERO,
        })
        .on(ToxicStream::Upstream),
    );
    let m = median(vec![
        round_trip(&mut s, 10).await,
        round_trip(&mut s, 10).await,
        round_trip(&mut s, 10).await,
    ]);
    assert!(m >= MS(270) && m <= MS(330), "up 100 + down 200: {m:?}");
    assert!(h.remove(id) && h.remove(up));
    let m = round_trip(&mut s, 10).await;
    assert!(m < MS(100), "removed: {m:?}");
}

#[tokio::test]
async fn jitter_spreads_latency_around_the_set_value() {
    let p = proxy_to(echo_server().await);
    p.handle().add(Toxic::new(ToxicKind::Latency {
        latency: MS(100),
        jitter: MS(50),
    }));
    let mut s = connect(&p).await;
    let mut rtts = Vec::new();
    for _ in 0..12 {
        rtts.push(round_trip(&mut s, 10).await);
    }
    assert!(
        rtts.iter().all(|d| *d >= MS(45) && *d <= MS(170)),
        "{rtts:?}"
    );
    let (min, max) = (rtts.iter().min().unwrap(), rtts.iter().max().unwrap());
    assert!(*max - *min > MS(10), "jitter varies the delay: {rtts:?}");
}

#[tokio::test]
async fn reset_peer_is_seen_by_the_client_as_a_reset() {
    let p = proxy_to(echo_server().await);
    let mut s = connect(&p).await;
    round_trip(&mut s, 10).await;
    p.handle()
        .add(Toxic::new(ToxicKind::ResetPeer { timeout: MS(100) }).on(ToxicStream::Upstream));
    let t = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the reset comes within 5 s");
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert!(
        t.elapsed() >= MS(90),
        "after its timeout: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn timeout_zero_holds_the_connection_silent_and_timeout_n_closes_it() {
    let p = proxy_to(echo_server().await);
    let h = p.handle();
    let id = h.add(Toxic::new(ToxicKind::Timeout {
        timeout: Duration::ZERO,
    }));
    let mut s = connect(&p).await;
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(MS(700), s.read(&mut buf)).await;
    assert!(r.is_err(), "the client's read times out: {r:?}");
    h.remove(id);
    // timeout: 300 ms: nothing comes back, then the connection is closed (EOF).
    h.add(Toxic::new(ToxicKind::Timeout { timeout: MS(300) }));
    let mut s = connect(&p).await;
    let t = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed within 5 s");
    assert!(matches!(n, Ok(0)), "EOF, no data: {n:?}");
    let e = t.elapsed();
    assert!(e >= MS(270) && e <= MS(1500), "closed after ~300 ms: {e:?}");
}

#[tokio::test]
async fn down_refuses_new_connections_resets_open_ones_and_up_serves_again() {
    let p = proxy_to(echo_server().await);
    let h = p.handle();
    let mut open = connect(&p).await;
    round_trip(&mut open, 10).await;
    let applied = h.apply(&NetworkFault::Down).await.unwrap();
    assert!(!h.is_enabled());
    let e = TcpStream::connect(p.listen_addr()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
        .await
        .expect("the open connection ends within 5 s");
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "reset: {r:?}"
    );
    h.revert(&applied).await.unwrap();
    let mut s = connect(&p).await;
    round_trip(&mut s, 10).await;
    assert_eq!(h.stats().active, 1);
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let p = proxy_to(echo_server().await);
    p.handle()
        .add(Toxic::new(ToxicKind::LimitData { bytes: 10 }));
    let mut s = connect(&p).await;
    s.write_all(&[1u8; 100]).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "closed within 5 s");
    assert_eq!(got.len(), 10);
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let p = proxy_to(echo_server().await);
    p.handle()
        .add(Toxic::new(ToxicKind::Bandwidth { rate_kbps: 200 }));
    let mut s = connect(&p).await;
    // 100 KB at 200 KB/s: ~0.5 s.
    let t = round_trip(&mut s, 100_000).await;
    assert!(t >= MS(450) && t <= MS(1500), "{t:?}");
}

#[tokio::test]
async fn slicer_delivers_every_byte_in_order() {
    let p = proxy_to(echo_server().await);
    p.handle().add(Toxic::new(ToxicKind::Slicer {
        average_size: 64,
        size_variation: 16,
        delay: Duration::from_micros(10),
    }));
    let mut s = connect(&p).await;
    let msg: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, msg);
}

#[tokio::test]
async fn slow_close_holds_the_end_of_the_stream() {
    let p = proxy_to(hello_server().await);
    p.handle()
        .add(Toxic::new(ToxicKind::SlowClose { delay: MS(400) }));
    let mut s = connect(&p).await;
    let t = Instant::now();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello");
    assert!(t.elapsed() >= MS(380), "{:?}", t.elapsed());
}

#[tokio::test]
async fn toxicity_zero_spares_every_connection() {
    let p = proxy_to(echo_server().await);
    p.handle().add(
        Toxic::new(ToxicKind::ResetPeer {
            timeout: Duration::ZERO,
        })
        .toxicity(0.0),
    );
    let mut s = connect(&p).await;
    round_trip(&mut s, 1000).await;
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_and_dropping_the_proxy_frees_its_port() {
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = proxy_to(dead);
    let addr = p.listen_addr();
    // Not `connect`: the proxy may reset it before set_nodelay.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed within 5 s");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    drop(p);
    let e = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}
