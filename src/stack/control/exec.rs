//! Exec hooks: `sh -c COMMAND` in its own process group with the stack's environment plus
//! the hook's, killed (the whole group) at its timeout, the tails of stdout and stderr kept.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::{lock, ControlError, ExecHook, ExecOutput, EXEC_TAIL_BYTES};
use crate::stack::child;
use nix::sys::signal::Signal;

/// Kills the hook's process group unless disarmed (the exec future was dropped mid-way).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            child::signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Reads a pipe to its end, keeping the last [`EXEC_TAIL_BYTES`].
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut t = lock(&tail);
                t.extend_from_slice(&buf[..n]);
                if t.len() > EXEC_TAIL_BYTES {
                    let cut = t.len() - EXEC_TAIL_BYTES;
                    t.drain(..cut);
                }
            }
        }
    }
}

/// The tail as text; a character cut at the start of the tail is dropped, not garbled.
fn tail_text(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .take(3)
        .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
        .count();
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

pub(super) async fn run_exec(
    stack_env: &[(String, String)],
    hook: &ExecHook,
) -> Result<ExecOutput, ControlError> {
    use std::process::Stdio;
    let started = Instant::now();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&hook.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(stack_env.iter().map(|(k, v)| (k, v)))
        .envs(hook.env.iter().map(|(k, v)| (k, v)));
    let spawn_err = |source| ControlError::ExecSpawn {
        command: hook.command.clone(),
        source,
    };
    // Own process group and parent-death signal, like every server of the stack.
    let mut child = child::spawn_guarded(cmd, None).map_err(spawn_err)?;
    let pgid = child.id() as i32;
    let mut guard = GroupGuard { pgid, armed: true };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // std's wait blocks: on a blocking thread, started first so the child is reaped on
    // every path below (the guard kills the group when this function returns early or its
    // future is dropped, which ends the wait).
    let mut wait = tokio::task::spawn_blocking(move || child.wait());
    let out_tail = Arc::new(Mutex::new(Vec::new()));
    let err_tail = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(p) = stdout {
        let p = tokio::process::ChildStdout::from_std(p).map_err(spawn_err)?;
        readers.push(tokio::spawn(read_tail(p, out_tail.clone())));
    }
    if let Some(p) = stderr {
        let p = tokio::process::ChildStderr::from_std(p).map_err(spawn_err)?;
        readers.push(tokio::spawn(read_tail(p, err_tail.clone())));
    }
    let waited = tokio::time::timeout(hook.timeout, &mut wait).await;
    // Whatever happened, nothing of the hook's group outlives it (background jobs included).
    child::signal_group(pgid, Signal::SIGKILL);
    let status = match waited {
        Ok(joined) => joined
            .map_err(|e| spawn_err(std::io::Error::other(e)))?
            .map_err(spawn_err)?,
        Err(_) => {
            let _ = wait.await;
            guard.armed = false;
            for r in readers {
                r.abort();
            }
            return Err(ControlError::ExecTimeout {
                command: hook.command.clone(),
                timeout: hook.timeout,
            });
        }
    };
    guard.armed = false;
    // The pipes close once every holder is gone; one that escaped the group (setsid) could
    // keep them open, so the readers get a short grace and then whatever they have.
    for mut r in readers {
        if tokio::time::timeout(Duration::from_secs(1), &mut r)
            .await
            .is_err()
        {
            r.abort();
        }
    }
    let stdout_tail = tail_text(&lock(&out_tail));
    let stderr_tail = tail_text(&lock(&err_tail));
    Ok(ExecOutput {
        status: status.code(),
        stdout_tail,
        stderr_tail,
        elapsed: started.elapsed(),
    })
}
