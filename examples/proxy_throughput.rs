//! Throughput of the fault proxy with no toxic (a bench figure, not a test):
//! `cargo run --release --example proxy_throughput -- [connections] [seconds]`, or
//! `bench/proxy-throughput.sh`. Clients write 256 KiB buffers through the proxy to a sink
//! that discards them, for the given time; prints Gbit/s as counted by the sink, and the
//! same path without the proxy for comparison.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgate::fault::proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn sink(counter: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = l.local_addr().expect("sink addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let c = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    c.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

async fn push(to: SocketAddr, conns: usize, secs: f64, counter: &AtomicU64) -> f64 {
    let start_bytes = counter.load(Ordering::Relaxed);
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(to).await.expect("connect");
            let buf = vec![0x5au8; 256 * 1024];
            while Instant::now() < deadline {
                if s.write_all(&buf).await.is_err() {
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let bytes = counter.load(Ordering::Relaxed) - start_bytes;
    bytes as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conns: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let counter = Arc::new(AtomicU64::new(0));
        let upstream = sink(counter.clone()).await;
        let proxy = Proxy::start("bench", "127.0.0.1:0".parse().expect("addr"), upstream)
            .expect("proxy");
        let direct = push(upstream, conns, secs, &counter).await;
        let proxied = push(proxy.listen_addr(), conns, secs, &counter).await;
        println!(
            "connections {conns}, {secs} s each: direct {direct:.2} Gbit/s, through the proxy (no toxic) {proxied:.2} Gbit/s"
        );
    });
}
