//! Process backend: redis-server and PostgreSQL as local child processes.
//!
//! Both listen on free ports on 127.0.0.1 and keep their data in the stack's work dir
//! (`redis/`, `pg/`), which is deleted with the stack. PostgreSQL: `initdb` (user
//! `loadgate`, a random password, scram-sha-256 for TCP), `postgres --single` to create the
//! `loadgate` database, then `postgres` with Unix sockets off and fsync off (a process crash
//! loses nothing acknowledged; only an OS crash would, and the data is throwaway).
//! initdb and postgres refuse to run as root: as root they run as the `postgres` user and
//! the cluster dir is chowned to it (and placed under the system temp dir when that user
//! cannot reach the work dir, e.g. a 0700 state root).
//!
//! With a replica (`stack.reference.postgres.replica`): the primary keeps initdb's default
//! `wal_level = replica` and its `pg_hba.conf` line that lets `loadgate` replicate over
//! 127.0.0.1 with scram-sha-256; `pg_basebackup -R -X stream` copies it into `replica/`
//! (its `primary_conninfo` written by `-R`), and a second postgres runs there as a hot
//! standby on its own free port, a child under the same lifetime rules as the others.
//! `async`: the primary keeps `synchronous_commit = off` (as without a replica), so it
//! acknowledges a commit before its WAL is flushed, and the WAL sender ships only flushed
//! WAL: a kill -9 loses the last ~200 ms (`wal_writer_delay`) of acknowledged writes, which
//! the replica never saw. That is the realistic async trade, and what the failover drill's
//! write ledger finds. `sync`: `synchronous_standby_names = '*'` and `synchronous_commit =
//! remote_apply`: a commit is acknowledged once the replica applied it.
//!
//! Each server's [`Launch`] (its port included) is kept with it, so the stack control handle
//! can start it again after a kill or stop on the same port with the same data dir.
//!
//! Binaries: `redis-server` from `$LOADGATE_REDIS_SERVER` or PATH; PostgreSQL's from
//! `$LOADGATE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else PATH.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::child::{self, ChildProc, Launch, RunAs};
use super::health;
use super::registry::SharedEntry;
use super::{wait_until, StackError};
use crate::spec::Replication;
use nix::sys::signal::Signal;

/// What the process backend started.
#[derive(Debug)]
pub struct ProcessServices {
    pub redis: ChildProc,
    pub postgres: ChildProc,
    /// How each was started (same port, data dir and log on a restart).
    pub redis_launch: Launch,
    pub postgres_launch: Launch,
    pub redis_port: u16,
    pub postgres_port: u16,
    pub redis_url: String,
    pub database_url: String,
    /// The streaming replica, when asked for.
    pub replica: Option<ReplicaProc>,
}

/// The PostgreSQL streaming replica (process backend).
#[derive(Debug)]
pub struct ReplicaProc {
    pub proc: ChildProc,
    pub launch: Launch,
    pub port: u16,
}

/// Where the PostgreSQL server binaries are, if anywhere.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LOADGATE_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    which("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
}

/// The redis-server binary, if any.
pub fn redis_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOADGATE_REDIS_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    which("redis-server")
}

/// Looks a program up in PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One thing the process backend needs and did not find; each message says how to get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MissingPart {
    #[error("redis-server (apt-get install redis-server)")]
    RedisServer,
    #[error("PostgreSQL server binaries initdb/postgres (apt-get install postgresql)")]
    PostgresBinaries,
    #[error("a `postgres` system user (postgres refuses to run as root; installing postgresql creates it)")]
    PostgresUser,
}

/// Why the process backend cannot run here: everything it is missing, comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_parts(.0))]
pub struct Missing(pub Vec<MissingPart>);

fn render_parts(parts: &[MissingPart]) -> String {
    parts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether this backend can run here; Err lists what is missing.
pub fn available() -> Result<(PathBuf, PathBuf), Missing> {
    let redis = redis_server_bin();
    let pg = pg_bin_dir();
    let mut missing = Vec::new();
    if redis.is_none() {
        missing.push(MissingPart::RedisServer);
    }
    if pg.is_none() {
        missing.push(MissingPart::PostgresBinaries);
    }
    if child::is_root() && RunAs::lookup("postgres").is_none() {
        missing.push(MissingPart::PostgresUser);
    }
    match (redis, pg) {
        (Some(r), Some(p)) if missing.is_empty() => Ok((r, p)),
        _ => Err(Missing(missing)),
    }
}

/// Starts Redis and PostgreSQL; waits until both accept connections.
pub async fn start(
    entry: &SharedEntry,
    redis_password: &str,
    pg_password: &str,
    replica: Option<Replication>,
    ready_timeout: Duration,
) -> Result<ProcessServices, StackError> {
    let (redis_bin, pg_bin) = available().map_err(|missing| StackError::Missing {
        backend: "process",
        what: missing.to_string(),
    })?;
    let work = entry.work_dir();
    let deadline = Instant::now() + ready_timeout;

    let (redis, redis_port, redis_launch) =
        start_redis(entry, &redis_bin, &work, redis_password, deadline).await?;
    let (postgres, pg_port, postgres_launch, replica) =
        start_postgres(entry, &pg_bin, &work, pg_password, replica, deadline).await?;
    Ok(ProcessServices {
        replica,
        redis,
        postgres,
        redis_launch,
        postgres_launch,
        redis_port,
        postgres_port: pg_port,
        redis_url: format!("redis://default:{redis_password}@127.0.0.1:{redis_port}/0"),
        database_url: format!("postgres://loadgate:{pg_password}@127.0.0.1:{pg_port}/loadgate"),
    })
}

/// Port races (another process takes the port between probe and bind) are retried.
const PORT_ATTEMPTS: usize = 3;

async fn start_redis(
    entry: &SharedEntry,
    bin: &Path,
    work: &Path,
    password: &str,
    deadline: Instant,
) -> Result<(ChildProc, u16, Launch), StackError> {
    let dir = work.join("redis");
    std::fs::create_dir_all(&dir).map_err(|e| StackError::io("create", &dir, e))?;
    let log = work.join("redis.log");
    let launch = |port: u16| {
        Launch::new("redis", bin, &log, Signal::SIGTERM)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ])
            .args(["--requirepass", password])
            .arg("--dir")
            .arg(&dir)
    };
    start_on_free_port(
        entry,
        "redis",
        &dir,
        deadline,
        Duration::from_secs(1),
        launch,
        |addr| health::redis_ping(addr, Some(password)),
    )
    .await
}

async fn start_postgres(
    entry: &SharedEntry,
    bin: &Path,
    work: &Path,
    password: &str,
    replica: Option<Replication>,
    deadline: Instant,
) -> Result<(ChildProc, u16, Launch, Option<ReplicaProc>), StackError> {
    let run_as = if child::is_root() {
        RunAs::lookup("postgres")
    } else {
        None
    };
    // The cluster lives in its own directory owned by the server's user. When that user
    // cannot reach the work dir (a 0700 state root owned by root), it goes under the system
    // temp dir instead, recorded in the entry so it is deleted with the stack.
    let base = match run_as {
        Some(user) if !traversable_by(work, user) => {
            let dir = std::env::temp_dir().join(format!("loadgate-pg-{}", entry.id()));
            entry.add_dir(&dir)?;
            dir
        }
        _ => work.join("pg"),
    };
    std::fs::create_dir_all(&base).map_err(|e| StackError::io("create", &base, e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700));
    }
    let data = base.join("data");
    std::fs::create_dir_all(&data).map_err(|e| StackError::io("create", &data, e))?;
    let pwfile = base.join("pwfile");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&pwfile)
            .map_err(|e| StackError::io("write", &pwfile, e))?;
        writeln!(f, "{password}").map_err(|e| StackError::io("write", &pwfile, e))?;
    }
    let log = work.join("postgres.log");
    if let Some(user) = run_as {
        for p in [&base, &data, &pwfile] {
            std::os::unix::fs::chown(p, Some(user.uid), Some(user.gid))
                .map_err(|e| StackError::io("chown to the postgres user", p, e))?;
        }
        // The log file is opened by loadgate and inherited, so no chown needed.
    }

    // initdb (one-shot, bounded by the deadline).
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "--username=loadgate",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .args([
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ])
        .arg(format!("--pwfile={}", pwfile.display()));
    run_to_end("postgres initdb", initdb, &log, run_as, None, deadline).await?;
    let _ = std::fs::remove_file(&pwfile);

    // CREATE DATABASE loadgate in single-user mode (no network, no client needed).
    let mut single = Command::new(bin.join("postgres"));
    single
        .arg("--single")
        .arg("-D")
        .arg(&data)
        .args(["-c", "fsync=off", "postgres"]);
    run_to_end(
        "postgres --single",
        single,
        &log,
        run_as,
        Some(b"CREATE DATABASE loadgate\n"),
        deadline,
    )
    .await?;

    let postgres_bin = bin.join("postgres");
    // sync: commits wait for the replica to apply them; otherwise acknowledged before the
    // WAL flush (see the module doc).
    let commit = super::primary_commit_args(replica);
    let launch = |port: u16| {
        Launch::new("postgres", &postgres_bin, &log, Signal::SIGINT)
            .run_as(run_as)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k", ""])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(commit.iter().copied())
            .args(["-c", "max_connections=200"])
    };
    let (proc, port, launch) = start_on_free_port(
        entry,
        "postgres",
        &data,
        deadline,
        Duration::from_secs(2),
        launch,
        |addr| health::postgres_accepting(addr, "loadgate", "loadgate"),
    )
    .await?;
    let Some(mode) = replica else {
        return Ok((proc, port, launch, None));
    };
    // The replica: a base backup of the running primary (-R writes primary_conninfo and
    // standby.signal), then a hot standby on its own port.
    let rdata = base.join("replica");
    let mut backup = Command::new(bin.join("pg_basebackup"));
    backup
        .arg("-D")
        .arg(&rdata)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "loadgate"])
        .env("PGPASSWORD", password);
    run_to_end(
        "postgres-replica pg_basebackup",
        backup,
        &log,
        run_as,
        None,
        deadline,
    )
    .await?;
    let rlog = work.join("postgres-replica.log");
    // After a promotion the replica is the primary: the same commit setting, no standby.
    let rcommit = super::replica_commit_setting(mode);
    let rlaunch = |rport: u16| {
        Launch::new("postgres-replica", &postgres_bin, &rlog, Signal::SIGINT)
            .run_as(run_as)
            .arg("-D")
            .arg(&rdata)
            .args(["-p", &rport.to_string(), "-h", "127.0.0.1", "-k", ""])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", rcommit, "-c", "synchronous_standby_names="])
            .args(["-c", "max_connections=200", "-c", "hot_standby=on"])
    };
    let (rproc, rport, rlaunch) = start_on_free_port(
        entry,
        "postgres-replica",
        &rdata,
        deadline,
        Duration::from_secs(2),
        rlaunch,
        |addr| health::postgres_accepting(addr, "loadgate", "loadgate"),
    )
    .await?;
    Ok((
        proc,
        port,
        launch,
        Some(ReplicaProc {
            proc: rproc,
            launch: rlaunch,
            port: rport,
        }),
    ))
}

/// Start a server on a free port and wait until `ready(addr)` succeeds. A start that lost
/// its port to another process between the probe and the bind ("Address already in use" in
/// its log) is retried on a new port, up to [`PORT_ATTEMPTS`] times; any other failure is
/// returned at once. `dir` only names the component's directory in a port-probe error.
/// Returns the process, its port and the launch that started it (kept for restarts).
async fn start_on_free_port<L, R, Fut>(
    entry: &SharedEntry,
    component: &str,
    dir: &Path,
    deadline: Instant,
    stop_grace: Duration,
    launch: L,
    ready: R,
) -> Result<(ChildProc, u16, Launch), StackError>
where
    L: Fn(u16) -> Launch,
    R: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<(), health::HealthError>>,
{
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = health::free_port().map_err(|e| StackError::io("pick a port for", dir, e))?;
        let how = launch(port);
        let mut proc = how.spawn().map_err(|e| StackError::Spawn {
            component: component.to_string(),
            program: how.program.display().to_string(),
            source: e,
        })?;
        entry.add_child(component, proc.pid())?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        match wait_until(&mut proc, deadline, || ready(addr)).await {
            Ok(()) => return Ok((proc, port, how)),
            Err(e) => {
                let port_race = proc.last_log_lines(10).contains("Address already in use");
                proc.stop(stop_grace);
                if !port_race {
                    return Err(e);
                }
                last_err = Some(e);
            }
        }
    }
    Err(last_err.expect("at least one attempt"))
}

/// Whether `user` can traverse every directory from `/` down to `dir`.
fn traversable_by(dir: &Path, user: RunAs) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    dir.ancestors().all(|d| match std::fs::metadata(d) {
        Ok(m) => {
            let mode = m.mode();
            (m.uid() == user.uid && mode & 0o100 != 0)
                || (m.gid() == user.gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        }
        Err(_) => false,
    })
}

/// Runs a one-shot command (optionally feeding stdin) to completion before `deadline`.
async fn run_to_end(
    what: &str,
    mut cmd: Command,
    log: &Path,
    run_as: Option<RunAs>,
    stdin: Option<&[u8]>,
    deadline: Instant,
) -> Result<(), StackError> {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| StackError::io("open", log, e))?;
    let errf = logf
        .try_clone()
        .map_err(|e| StackError::io("open", log, e))?;
    cmd.stdout(logf).stderr(errf).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let program = format!("{:?}", cmd.get_program());
    let mut child = child::spawn_guarded(cmd, run_as).map_err(|e| StackError::Spawn {
        component: what.to_string(),
        program,
        source: e,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input);
    }
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| StackError::io("wait for", log, e))?
        {
            if status.success() {
                return Ok(());
            }
            return Err(StackError::NotReady {
                component: what.to_string(),
                reason: format!("exited with {status}"),
                log: child::last_lines(log, 20),
            });
        }
        if Instant::now() >= deadline {
            child::signal_group(child.id() as i32, Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            return Err(StackError::NotReady {
                component: what.to_string(),
                reason: "did not finish before the ready timeout".into(),
                log: child::last_lines(log, 20),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
