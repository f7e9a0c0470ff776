//! Child processes that cannot outlive loadgate.
//!
//! Every server the stack starts (redis-server, postgres, loadgate-gateway) goes through
//! [`spawn_guarded`]. In the child, between fork and exec, it
//! - moves into its own process group (so a stop signal reaches the server's own children,
//!   e.g. postgres backends, and so Ctrl-C in a terminal does not hit it twice),
//! - drops to another user when asked (postgres refuses to run as root),
//! - sets `PR_SET_PDEATHSIG = SIGKILL` *after* the user change (changing credentials clears
//!   it), so the kernel kills the child when loadgate dies, even by SIGKILL.
//!
//! The parent-death signal fires when the *thread* that forked the child exits, not the
//! process. Tokio's blocking threads come and go, so all forks happen on one dedicated
//! spawner thread that lives as long as the process.
//!
//! Stopping ([`ChildProc::stop`]): the stop signal to the whole group (then SIGCONT, so a
//! paused group sees it), a grace period, then SIGKILL to the group; the child is always
//! waited for (no zombies). [`ChildProc::kill`] is SIGKILL to the group at once.
//!
//! A [`Launch`] keeps how a server was started (program, arguments, environment, log, user,
//! stop signal) so the stack control handle can start it again the same way, on the same port.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Pid, Uid};

/// A user to run a child as (uid, gid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Looks up a system user by name (e.g. `postgres`).
    pub fn lookup(name: &str) -> Option<RunAs> {
        match nix::unistd::User::from_name(name) {
            Ok(user) => user.map(|u| RunAs {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            Err(e) => {
                tracing::warn!("looking up user {name}: {e}");
                None
            }
        }
    }
}

/// Whether loadgate runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// How a server process is started, kept so it can be started again identically (the
/// control handle's `start` after a kill or stop: same program, arguments (port included),
/// environment, data dir, log file, user and stop signal).
#[derive(Clone)]
pub struct Launch {
    /// Component name used in errors and in the registry (`redis`, `postgres`, `gw-1`, `edge`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    pub log_path: PathBuf,
    pub run_as: Option<RunAs>,
    /// Signal that asks this server to stop quickly (postgres: SIGINT = fast shutdown).
    pub stop_signal: Signal,
}

// Not derived: the arguments and environment hold passwords and API keys.
impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl Launch {
    pub fn new(name: &str, program: &Path, log_path: &Path, stop_signal: Signal) -> Launch {
        Launch {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            log_path: log_path.to_path_buf(),
            run_as: None,
            stop_signal,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Launch {
        self.args.push(a.into());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Launch {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn run_as(mut self, user: Option<RunAs>) -> Launch {
        self.run_as = user;
        self
    }

    /// The value following `flag` in the arguments, replaced by `value` (e.g. `--listen`).
    /// Returns false when `flag` is not there or has no value.
    pub fn replace_arg_value(&mut self, flag: &str, value: impl Into<OsString>) -> bool {
        match self.args.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.args.len() => {
                self.args[i + 1] = value.into();
                true
            }
            _ => false,
        }
    }

    /// The command (not yet spawned).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Spawns it through [`ChildProc::spawn`] (own process group, parent-death signal).
    pub fn spawn(&self) -> io::Result<ChildProc> {
        ChildProc::spawn(
            &self.name,
            self.command(),
            &self.log_path,
            self.run_as,
            self.stop_signal,
        )
    }
}

/// A started server process with its log file.
#[derive(Debug)]
pub struct ChildProc {
    /// Component name used in errors (`redis`, `postgres`, `gw-1`, `edge`).
    pub name: String,
    child: Option<Child>,
    pid: u32,
    /// Start time from /proc (clock ticks since boot; 0 when it had already exited).
    start: u64,
    /// Signal that asks this server to stop quickly (postgres: SIGINT = fast shutdown).
    stop_signal: Signal,
    pub log_path: PathBuf,
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static std::sync::Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<std::sync::Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("loadgate-spawner".into())
            .spawn(move || {
                // Lives until the process exits: children's PDEATHSIG is tied to this thread.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the loadgate-spawner thread");
        std::sync::Mutex::new(tx)
    })
}

/// Prepares `cmd` (process group, optional user, parent-death signal) and spawns it on the
/// spawner thread.
pub fn spawn_guarded(mut cmd: Command, run_as: Option<RunAs>) -> io::Result<Child> {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec, so it may only call async-signal-safe
    // functions: nix's setpgid, setgroups (an empty list: no allocation), setgid, setuid,
    // prctl(PR_SET_PDEATHSIG), getppid and raise are thin wrappers over those syscalls, and
    // their errors convert to io::Error without allocating.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            if let Some(user) = run_as {
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(Gid::from_raw(user.gid))?;
                nix::unistd::setuid(Uid::from_raw(user.uid))?;
            }
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl.
            if nix::unistd::getppid() != parent {
                nix::sys::signal::raise(Signal::SIGKILL)?;
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the loadgate-spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the loadgate-spawner thread is gone"))?
}

impl ChildProc {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log_path`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log_path: &Path,
        run_as: Option<RunAs>,
        stop_signal: Signal,
    ) -> io::Result<ChildProc> {
        let log = File::options().create(true).append(true).open(log_path)?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_guarded(cmd, run_as)?;
        Ok(ChildProc {
            name: name.to_string(),
            pid: child.id(),
            start: proc_start(child.id()).unwrap_or(0),
            child: Some(child),
            stop_signal,
            log_path: log_path.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Start time (clock ticks since boot), the pair (pid, start) names this process even
    /// after the pid is reused.
    pub fn start_time(&self) -> u64 {
        self.start
    }

    /// `Some(status)` when the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last `n` lines of the log, for error messages.
    pub fn last_log_lines(&self, n: usize) -> String {
        last_lines(&self.log_path, n)
    }

    /// Stop signal to the process group, wait up to `grace`, then SIGKILL the group.
    /// Idempotent; always reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = self.pid as i32;
        if child.try_wait().ok().flatten().is_none() {
            signal_group(pgid, self.stop_signal);
            // A paused (SIGSTOPped) group keeps the stop signal pending until it continues:
            // without SIGCONT it would sit out the whole grace period and die by SIGKILL.
            // SIGCONT to a running process does nothing.
            signal_group(pgid, Signal::SIGCONT);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Leftover group members (or the leader itself, past the grace period).
        signal_group(pgid, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL to the process group at once (no stop signal, no grace), then reaps the
    /// child. Idempotent. Group members that are not the child (postgres backends) die too
    /// but are reaped by init: [`wait_group_gone`] waits for them.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGKILL also ends stopped (paused) processes; no SIGCONT needed.
        signal_group(self.pid as i32, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// Sends `sig` to process group `pgid` (ESRCH ignored). `pgid > 1` never targets init or
/// "every process" (-1).
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 1 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pgid), sig);
    }
}

/// Waits until no live process is left in process group `pgid` among those started at or
/// after `start` (the leader's start time, so a reused id is not mistaken for the group).
/// Zombies count as gone. Blocking (polls /proc every 20 ms); returns whether the group is
/// gone within `within`.
pub fn wait_group_gone(pgid: u32, start: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let alive = all_pids().into_iter().any(|pid| {
            proc_stat(pid).is_some_and(|s| {
                s.pgrp == pgid && s.start >= start && s.state != 'Z' && s.state != 'X'
            })
        });
        if !alive {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to one process (ESRCH ignored); `pid > 1` as above.
pub fn signal_pid(pid: i32, sig: Signal) {
    if pid > 1 {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
    }
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn pid_alive(pid: u32) -> bool {
    match proc_stat(pid) {
        Some(stat) => stat.state != 'Z' && stat.state != 'X',
        None => false,
    }
}

/// The fields of /proc/PID/stat that loadgate needs.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Start time in clock ticks since boot: (pid, start) identifies a process even when
    /// the pid is reused later.
    pub start: u64,
}

/// Parses /proc/PID/stat.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field 4 ppid, 5 pgrp, 22 starttime.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The start time of a process, if it exists.
pub fn proc_start(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start)
}

/// Every pid currently in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The last `n` lines of a text file (empty string when unreadable).
pub fn last_lines(path: &Path, n: usize) -> String {
    let Ok(file) = File::open(path) else {
        return String::new();
    };
    let mut ring = VecDeque::with_capacity(n + 1);
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        ring.push_back(line);
        if ring.len() > n {
            ring.pop_front();
        }
    }
    ring.into_iter().collect::<Vec<_>>().join("\n")
}
