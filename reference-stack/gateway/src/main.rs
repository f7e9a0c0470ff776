//! `loadgate-gateway [--role gateway|edge] [--listen ADDR] [--addr-file PATH]`
//!
//! Thin binary: parse arguments, read configuration from the environment, set up JSON logs on
//! stderr, start the role, bind, publish the bound address (atomically to `--addr-file` and as
//! a JSON line with field `listening` on stdout and in the logs), serve until SIGTERM/SIGINT,
//! then drain and stop. Exits non-zero with a message naming the failed component.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use loadgate_gateway::config::{Config, EdgeConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Gateway,
    Edge,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgate-gateway",
    version,
    about = "Reference GenAI-style API gateway for loadgate"
)]
struct Args {
    /// Which role to run.
    #[arg(long, value_enum, default_value = "gateway")]
    role: Role,
    /// Address to bind (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the bound IP:PORT here (temp file + rename) once serving.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
}

fn write_addr_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, addr.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = token.cancelled() => {}
    }
    token.cancel();
}

async fn serve(
    router: axum::Router,
    args: &Args,
    role: &str,
    instance: &str,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let Some(p) = &args.addr_file {
        write_addr_file(p, addr)?;
    }
    println!(
        "{}",
        serde_json::json!({"listening": addr.to_string(), "role": role, "instance": instance})
    );
    tracing::info!(listening = %addr, role, instance, "listening");
    let token = stop.clone();
    tokio::spawn(shutdown_signal(token));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .context("serving")?;
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    match args.role {
        Role::Gateway => {
            let cfg = Config::from_env().context("gateway configuration")?;
            init_logs(&cfg.log_filter);
            tracing::info!(profile = cfg.profile.as_str(), instance = %cfg.instance, config = ?cfg, "starting gateway");
            let instance = cfg.instance.clone();
            if cfg.lifecycle.enabled() {
                // Scale to zero: the instance goes cold when idle; the edge wakes it.
                let lc = loadgate_gateway::lifecycle::Lifecycle::start(cfg).await?;
                let idle = tokio::spawn(lc.clone().idle_loop(stop.clone()));
                let app = loadgate_gateway::lifecycle::app(lc.clone());
                let served = serve(app, &args, "gateway", &instance, stop.clone()).await;
                stop.cancel();
                if let Err(e) = idle.await {
                    tracing::warn!(error = %e, "idle loop ended abnormally");
                }
                tracing::info!("draining: stopping workers and flushing writes");
                lc.shutdown(Duration::from_secs(10)).await;
                served?;
            } else {
                let st = loadgate_gateway::AppState::start(cfg).await?;
                let app = loadgate_gateway::app(st.clone());
                let served = serve(app, &args, "gateway", &instance, stop).await;
                tracing::info!("draining: stopping workers and flushing writes");
                st.stop(Duration::from_secs(10)).await;
                served?;
            }
        }
        Role::Edge => {
            let cfg = EdgeConfig::from_env().context("edge configuration")?;
            init_logs(&cfg.log_filter);
            tracing::info!(upstreams = ?cfg.upstreams, secondary = ?cfg.secondary_upstreams, strategy = ?cfg.strategy, "starting edge");
            let st = loadgate_gateway::edge::EdgeState::new(&cfg);
            let checker = tokio::spawn(loadgate_gateway::edge::health_loop(
                st.clone(),
                stop.clone(),
            ));
            let served = serve(
                loadgate_gateway::edge::app(st),
                &args,
                "edge",
                "edge",
                stop.clone(),
            )
            .await;
            stop.cancel();
            let _ = checker.await;
            served?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The error chain joined with ": ", skipping causes their parent already quoted.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgate-gateway: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let msg = describe(&e);
            tracing::error!(error = %msg, "fatal");
            eprintln!("loadgate-gateway: {msg}");
            std::process::ExitCode::from(1)
        }
    }
}
