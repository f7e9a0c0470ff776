//! Backup and restore of the stack's PostgreSQL, for restore drills: [`StackHandle::backup`]
//! runs `pg_dump --format=custom` of the gateways' database into the stack's work dir
//! (`backups/postgres-N.dump`, deleted with the stack); [`StackHandle::restore`] restores the
//! latest one over the live database with `pg_restore --clean --if-exists
//! --single-transaction --exit-on-error --no-owner`.
//!
//! Why this restore, and not drop + recreate the database or a new instance: a restore drill
//! answers "if we had to go back to last night's backup now, what would users lose and for how
//! long?". The service keeps its connection string and its pool; the data goes back to the
//! backup's snapshot. `--single-transaction` makes the swap atomic: the gateways see the old
//! tables or the restored ones, never a half-restored schema (writes that arrive meanwhile wait
//! on the tables' locks and then land in the restored tables, or fail, which the failover
//! measurement counts). Dropping and recreating the database would first have to terminate
//! every gateway connection and leave a window with no database at all, which measures the
//! pool's reconnects more than the restore. Every write acknowledged after the backup's
//! snapshot is gone afterwards: the write ledger reads them back and reports them lost.
//!
//! The real binaries run: with the process backend the server's own `pg_dump` / `pg_restore`
//! (the PostgreSQL bin dir the stack started postgres from), over TCP with the stack's
//! credentials (`DATABASE_URL`, password in `PGPASSWORD`); with the containers backend the
//! container's, through `docker exec` (the dump streamed to / from the host file, so it is
//! in the work dir either way). Each command is bounded ([`DATA_OP_TIMEOUT`]), killed when the
//! stack shuts down meanwhile, and serialized with the component's other operations (a kill
//! of postgres waits for a running dump).
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::{ControlError, StackHandle, Target};
use crate::spec::{Component, StackBackend};

/// The longest a pg_dump or pg_restore may take.
pub const DATA_OP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a backup or a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOpReport {
    pub component: Component,
    /// The dump file (in the stack's work dir).
    pub file: PathBuf,
    /// Its size, bytes.
    pub bytes: u64,
    /// 1-based number of the backup written or restored.
    pub backup: u32,
    /// From the call to its return.
    pub elapsed: Duration,
    /// A line for events and logs.
    pub detail: String,
}

/// The database connection of the stack, from its `DATABASE_URL`.
struct Conn {
    user: String,
    password: String,
    db: String,
    port: u16,
}

fn data_err(component: Component, what: &'static str, reason: impl Into<String>) -> ControlError {
    ControlError::DataOp {
        component,
        what,
        reason: reason.into(),
    }
}

impl StackHandle {
    /// Dumps `component` (postgres) to a new file in the work dir; see the module doc.
    pub async fn backup(&self, component: Component) -> Result<DataOpReport, ControlError> {
        let started = Instant::now();
        let (target, conn) = self.data_target(component, "backup")?;
        let _serial = target.op_lock().lock_owned().await;
        let n = {
            let mut st = self.shared.state();
            st.backups += 1;
            st.backups
        };
        let dir = self.shared.entry.work_dir().join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| {
            data_err(
                component,
                "backup",
                format!("creating {}: {e}", dir.display()),
            )
        })?;
        let file = dir.join(format!("postgres-{n}.dump"));
        let args = [
            "--format=custom".to_string(),
            "--no-owner".to_string(),
            "--dbname".to_string(),
            conn.db.clone(),
        ];
        self.run_pg(
            component, "backup", &target, &conn, "pg_dump", &args, &file, true,
        )
        .await?;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let elapsed = started.elapsed();
        let report = DataOpReport {
            component,
            detail: format!(
                "pg_dump -Fc backup #{n}: {bytes} bytes to {} in {} ms",
                file.display(),
                elapsed.as_millis()
            ),
            file,
            bytes,
            backup: n,
            elapsed,
        };
        tracing::info!(%component, detail = %report.detail, "backup");
        Ok(report)
    }

    /// Restores the latest backup of `component` over its live database; see the module doc.
    pub async fn restore(&self, component: Component) -> Result<DataOpReport, ControlError> {
        let started = Instant::now();
        let (target, conn) = self.data_target(component, "restore")?;
        let _serial = target.op_lock().lock_owned().await;
        let n = self.shared.state().backups;
        if n == 0 {
            return Err(data_err(
                component,
                "restore",
                "no backup was taken yet: put a `backup` fault before the `restore` on the run clock",
            ));
        }
        let file = self
            .shared
            .entry
            .work_dir()
            .join("backups")
            .join(format!("postgres-{n}.dump"));
        let bytes = std::fs::metadata(&file).map(|m| m.len()).map_err(|e| {
            data_err(
                component,
                "restore",
                format!("reading {}: {e}", file.display()),
            )
        })?;
        let args = [
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--dbname",
            &conn.db,
        ]
        .map(str::to_string);
        self.run_pg(
            component,
            "restore",
            &target,
            &conn,
            "pg_restore",
            &args,
            &file,
            false,
        )
        .await?;
        let elapsed = started.elapsed();
        let report = DataOpReport {
            component,
            detail: format!(
                "pg_restore --clean --single-transaction of backup #{n} ({bytes} bytes) in {} ms",
                elapsed.as_millis()
            ),
            file,
            bytes,
            backup: n,
            elapsed,
        };
        tracing::info!(%component, detail = %report.detail, "restore");
        Ok(report)
    }

    /// The component's slot and connection, when it is a database this stack runs.
    fn data_target(
        &self,
        component: Component,
        what: &'static str,
    ) -> Result<(Target, Conn), ControlError> {
        if component != Component::Postgres {
            return Err(data_err(
                component,
                what,
                "only postgres has backups: use `component: postgres`",
            ));
        }
        if self.shared.is_closed() {
            return Err(data_err(component, what, "the stack was shut down"));
        }
        let target = self.shared.target(component).ok_or_else(|| {
            data_err(
                component,
                what,
                "this stack runs no postgres of its own (the external backend): run pg_dump / pg_restore with an exec fault",
            )
        })?;
        let url = self
            .shared
            .env_var("DATABASE_URL")
            .ok_or_else(|| data_err(component, what, "the stack exports no DATABASE_URL"))?;
        let parsed = url::Url::parse(&url)
            .map_err(|e| data_err(component, what, format!("bad DATABASE_URL: {e}")))?;
        let conn = Conn {
            user: parsed.username().to_string(),
            password: parsed.password().unwrap_or_default().to_string(),
            db: parsed.path().trim_start_matches('/').to_string(),
            port: parsed.port().unwrap_or(5432),
        };
        Ok((target, conn))
    }

    /// Runs `program` (pg_dump / pg_restore) against the database, its stdout to `file`
    /// (`to_file`) or its stdin from it; bounded and cancelled at shutdown.
    #[allow(clippy::too_many_arguments)]
    async fn run_pg(
        &self,
        component: Component,
        what: &'static str,
        target: &Target,
        conn: &Conn,
        program: &str,
        args: &[String],
        file: &Path,
        to_file: bool,
    ) -> Result<(), ControlError> {
        let err = |reason: String| data_err(component, what, reason);
        let mut cmd = match (target, self.shared.backend()) {
            (Target::Proc(_), StackBackend::Process) => {
                let bin = crate::stack::process::pg_bin_dir()
                    .map(|d| d.join(program))
                    .filter(|p| p.is_file())
                    .unwrap_or_else(|| PathBuf::from(program));
                let mut c = Command::new(bin);
                c.args(["--host", "127.0.0.1", "--port", &conn.port.to_string()]);
                c.env("PGPASSWORD", &conn.password);
                c
            }
            (Target::Container(k), _) => {
                // The server's own client in its container; the port inside is 5432.
                let mut c = Command::new("docker");
                c.args(["exec", "-i", "-e"])
                    .arg(format!("PGPASSWORD={}", conn.password))
                    .arg(&k.id)
                    .args([program, "--host", "127.0.0.1", "--port", "5432"]);
                c
            }
            (Target::Proc(_), other) => {
                return Err(err(format!(
                    "postgres is not run by the {other:?} backend here"
                )))
            }
        };
        cmd.args(["--username", &conn.user, "--no-password"]);
        cmd.args(args);
        let f = if to_file {
            std::fs::File::create(file)
        } else {
            std::fs::File::open(file)
        }
        .map_err(|e| err(format!("opening {}: {e}", file.display())))?;
        if to_file {
            cmd.stdout(f).stdin(Stdio::null());
        } else {
            cmd.stdin(f).stdout(Stdio::null());
        }
        cmd.stderr(Stdio::piped()).kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("cannot start {program}: {e} (install the PostgreSQL client binaries, or with the containers backend check `docker` is on PATH)")))?;
        let out = tokio::select! {
            _ = self.shared.cancel.cancelled() => return Err(err("the stack shut down meanwhile".into())),
            r = tokio::time::timeout(DATA_OP_TIMEOUT, child.wait_with_output()) => match r {
                Err(_) => return Err(err(format!("{program} did not finish within {DATA_OP_TIMEOUT:?}; it was killed"))),
                Ok(Err(e)) => return Err(err(format!("waiting for {program}: {e}"))),
                Ok(Ok(o)) => o,
            },
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr
                .trim()
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(err(format!("{program} exited with {}: {tail}", out.status)));
        }
        Ok(())
    }
}
