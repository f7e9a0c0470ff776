//! Real Redis and PostgreSQL servers as child processes in a temporary directory, and the
//! gateway binary started against them. Everything is stopped (by pid) and removed on drop.
//! When `redis-server` or the PostgreSQL binaries are missing, `Services::start` returns
//! `None` and the live tests print why and pass without running.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const ADMIN_KEY: &str = "test-admin-key";
pub const USER_KEY: &str = "test-user-key";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn pg_cmd(bin: &str) -> Command {
    let path = format!("{PG_BIN}/{bin}");
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

fn wait_port(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

pub struct Services {
    pub dir: tempfile::TempDir,
    redis: Child,
    postgres: Child,
    pub redis_port: u16,
    pub pg_port: u16,
}

impl Services {
    pub fn start() -> Option<Services> {
        if !Path::new(&format!("{PG_BIN}/initdb")).exists()
            || Command::new("redis-server")
                .arg("--version")
                .output()
                .is_err()
        {
            eprintln!("skipping live test: redis-server or {PG_BIN} not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("lg-gw-test")
            .tempdir()
            .unwrap();
        let mut perms = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o777);
        std::fs::set_permissions(dir.path(), perms).unwrap();
        let redis_port = free_port();
        let redis = Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let data = dir.path().join("pg");
        let ok = pg_cmd("initdb")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb failed");
        let pg_port = free_port();
        let postgres = pg_cmd("postgres")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-p",
                &pg_port.to_string(),
                "-k",
            ])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Services {
            dir,
            redis,
            postgres,
            redis_port,
            pg_port,
        };
        assert!(
            wait_port(redis_port, Duration::from_secs(10)),
            "redis did not start"
        );
        assert!(
            wait_port(pg_port, Duration::from_secs(20)),
            "postgres did not start"
        );
        Some(s)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    pub fn database_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.pg_port)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        kill(self.redis.id(), "-TERM");
        // The real postmaster pid (the child may be `runuser`).
        let pidfile = self.dir.path().join("pg").join("postmaster.pid");
        if let Ok(text) = std::fs::read_to_string(&pidfile) {
            if let Some(pid) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok())
            {
                kill(pid, "-INT"); // fast shutdown
            }
        }
        kill(self.postgres.id(), "-TERM");
        let _ = self.redis.wait();
        let _ = self.postgres.wait();
    }
}

/// A running gateway (or edge) process; its stderr goes to `<dir>/<name>.log`, its stdout to
/// `<dir>/<name>.out`.
pub struct Gateway {
    pub child: Child,
    pub base: String,
    pub addr_file: PathBuf,
}

impl Gateway {
    pub fn start(dir: &Path, name: &str, role: &str, env: &[(&str, String)]) -> Gateway {
        let addr_file = dir.join(format!("{name}.addr"));
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let out = std::fs::File::create(dir.join(format!("{name}.out"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgate-gateway"));
        cmd.args(["--role", role, "--addr-file"])
            .arg(&addr_file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(out)
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                return Gateway {
                    child,
                    base: format!("http://{}", a.trim()),
                    addr_file,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                panic!("{name} exited early with {status}: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not publish its address"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        kill(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The environment for a gateway instance against `s`.
pub fn gateway_env(
    s: &Services,
    instance: &str,
    extra: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![
        ("REDIS_URL", s.redis_url()),
        ("DATABASE_URL", s.database_url()),
        ("GATEWAY_ADMIN_KEY", ADMIN_KEY.into()),
        ("GATEWAY_USER_KEY", USER_KEY.into()),
        ("GATEWAY_INSTANCE", instance.into()),
        ("GATEWAY_LOG", "info".into()),
    ];
    for (k, val) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        v.push((k, val.to_string()));
    }
    v
}
