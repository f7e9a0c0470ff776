//! Shared test helpers: an in-process HTTP server on 127.0.0.1:0 in a background thread, and
//! small builders for run specs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loadgate::engine::{self, EngineOptions};
use loadgate::grammar::template::Template;
use loadgate::metrics::RunMetrics;
use loadgate::spec::{ExecutorSpec, HttpOptions, RequestSpec, RunSpec, ScenarioSpec};
use tokio_util::sync::CancellationToken;

/// A server running on its own thread and runtime; stopped (and joined) on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Run `serve(listener, stop)` on a background runtime.
    pub fn start<F, Fut>(serve: F) -> TestServer
    where
        F: FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async move {
                        tokio::select! {
                            _ = serve(listener, token.clone()) => {}
                            _ = token.cancelled() => {}
                        }
                    })
                    .await;
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Serve an axum router over HTTP/1.1.
    pub fn axum(app: axum::Router) -> TestServer {
        TestServer::start(move |listener, _stop| async move {
            let _ = axum::serve(listener, app).await;
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A request `METHOD path` with no checks.
pub fn request(method: &str, path: &str) -> RequestSpec {
    RequestSpec {
        name: format!("{method} {path}"),
        weight: 1,
        method: method.to_string(),
        path: Template::parse(path).expect("valid path template"),
        headers: Vec::new(),
        body: None,
        body_json: false,
        checks: Vec::new(),
    }
}

/// A scenario with one request.
pub fn scenario(name: &str, executor: ExecutorSpec, req: RequestSpec) -> ScenarioSpec {
    ScenarioSpec {
        name: name.to_string(),
        executor,
        start_after: Duration::ZERO,
        graceful_stop: Duration::from_secs(2),
        requests: vec![req],
        tags: BTreeMap::new(),
        ledger: None,
        flow: None,
    }
}

/// A run spec against `target`.
pub fn spec(target: &str, scenarios: Vec<ScenarioSpec>) -> RunSpec {
    RunSpec {
        name: "test".into(),
        target: target.to_string(),
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            ..HttpOptions::default()
        },
        feeders: BTreeMap::new(),
        scenarios,
        thresholds: Vec::new(),
        probes: Vec::new(),
        slos: Vec::new(),
        canary: None,
        blue_green: None,
        report_formats: Vec::new(),
        allow_hosts: Vec::new(),
        faults: Vec::new(),
        scrapes: Vec::new(),
        dependencies: None,
        autoscaling: Vec::new(),
    }
}

/// Run the engine to completion with `threads` worker threads.
pub fn run(spec: RunSpec, threads: usize) -> RunMetrics {
    run_with(
        spec,
        EngineOptions {
            threads,
            segment: None,
            slices: false,
        },
        CancellationToken::new(),
    )
}

/// Run the engine to completion with explicit options and stop token.
pub fn run_with(spec: RunSpec, opts: EngineOptions, stop: CancellationToken) -> RunMetrics {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let handle = engine::start(Arc::new(spec), opts, stop).expect("engine starts");
        handle.finish().await.expect("engine finishes")
    })
}

/// The coordinated-omission stall: a request arriving in [`start` + 1.0 s, `start` + 1.5 s)
/// is held until that window ends (`start`: the server's first request).
pub async fn hold_in_stall_window(start: std::time::Instant) {
    let (from, to) = (
        start + Duration::from_millis(1000),
        start + Duration::from_millis(1500),
    );
    let now = std::time::Instant::now();
    if now >= from && now < to {
        tokio::time::sleep_until(to.into()).await;
    }
}
