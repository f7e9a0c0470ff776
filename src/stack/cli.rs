//! `loadgate stack up|down|status`: the reference stack on its own, for manual runs and demos.
//!
//! `up` starts a stack, prints its environment as `KEY=VALUE` lines on stdout (so
//! `eval "$(loadgate stack up &)"`-style scripting or copy-paste works), and keeps it running
//! until the shutdown future completes (Ctrl-C) or the process gets SIGTERM from `down`.
//! `down` signals the owners of stacks recorded in the state dir and waits for their entries
//! to disappear; entries whose owner is already dead are reaped directly.

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use super::{child, registry, StackError, StackOptions, StackStatusLine};
use crate::spec::StackSpec;
use nix::sys::signal::Signal;

/// Starts the stack, prints `KEY=VALUE` lines, waits for `shutdown`, stops the stack.
pub async fn up(
    spec: &StackSpec,
    opts: &StackOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StackError> {
    let stack = super::start(spec, opts).await?;
    {
        let mut out = std::io::stdout().lock();
        for (k, v) in stack.env() {
            writeln!(out, "{k}={v}").map_err(|e| StackError::Io {
                what: "write to stdout".into(),
                source: e,
            })?;
        }
        out.flush().map_err(|e| StackError::Io {
            what: "flush stdout".into(),
            source: e,
        })?;
    }
    // SIGTERM (from `loadgate stack down`) ends the wait like Ctrl-C does.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| StackError::Io {
            what: "install a SIGTERM handler".into(),
            source: e,
        })?;
    tokio::select! {
        _ = shutdown => {}
        _ = term.recv() => {}
    }
    stack.shutdown().await
}

/// `loadgate stack down`: stops every stack under the default state root and prints how
/// many were stopped.
pub fn down() -> Result<(), StackError> {
    let n = down_in(&StackOptions::default(), Duration::from_secs(15))?;
    println!("stopped {n} stack(s)");
    Ok(())
}

/// `loadgate stack status`: one line per recorded stack (or a note that there is none).
pub fn status() -> Result<(), StackError> {
    let lines = status_lines(&StackOptions::default());
    if lines.is_empty() {
        println!(
            "no stacks under {}",
            StackOptions::default().root().display()
        );
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Stops every stack recorded under the state root: SIGTERM to live owners (waiting up to
/// `wait` for them to clean up), reaping for dead ones. Returns how many stacks were stopped.
pub fn down_in(opts: &StackOptions, wait: Duration) -> Result<usize, StackError> {
    let root = opts.root();
    let mut stopped = super::reap_in(&root)?;
    let live: Vec<_> = registry::list(&root)
        .into_iter()
        .filter(|(_, r)| r.owner_alive())
        .collect();
    for (_, r) in &live {
        if r.owner_pid != std::process::id() {
            child::signal_pid(r.owner_pid as i32, Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + wait;
    for (dir, r) in &live {
        if r.owner_pid == std::process::id() {
            continue;
        }
        while dir.exists() && r.owner_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        stopped += 1;
    }
    // Owners that exited without cleaning up: reap what is left.
    super::reap_in(&root)?;
    Ok(stopped)
}

/// The stacks recorded under the state root.
pub fn status_lines(opts: &StackOptions) -> Vec<StackStatusLine> {
    super::status_in(&opts.root())
}
