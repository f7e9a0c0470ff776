//! The PostgreSQL streaming replica of the containers backend: a second container from the
//! primary's image (the local `loadgate/postgres:15-local` or the official one), its
//! entrypoint replaced by a short script that runs `pg_basebackup -R -X stream` from the
//! primary container (over Docker's bridge network, at the primary's container address) into
//! an empty data dir, then postgres as a hot standby. Its 5432 is published on a host port of
//! its own, fixed like the others', so the failover reaches it where the stack does.
//!
//! The primary's images allow password logins from anywhere but no replication connection
//! from outside the container, so before the backup a `docker exec` (as `postgres`) appends
//! `host replication all all scram-sha-256` to the primary's `pg_hba.conf` and reloads it
//! (SIGHUP to the container's PID 1, postgres). Both are image-agnostic: PGDATA comes from
//! the image's environment, the binaries from `/usr/lib/postgresql/*/bin`.
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use futures_util::StreamExt;

use super::{health, start_one, ContainerPlan, LogStream, StackError};
use crate::spec::Replication;

/// Run by `sh -c` in the replica container as `postgres`; `$@`: postgres's `-c` options.
const REPLICA_SCRIPT: &str = r#"set -eu
B=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$B/pg_basebackup" -h "$PRIMARY_HOST" -p 5432 -U loadgate -D "$PGDATA" -R -X stream -c fast --no-sync
  chmod 700 "$PGDATA"
  echo "replica: base backup of $PRIMARY_HOST done" >&2
fi
exec "$B/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
"#;

/// Run in the primary container as `postgres`: let the replica in, reload.
const ALLOW_REPLICATION: &str = r#"set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
printf 'host replication all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
kill -HUP 1
"#;

/// Starts the replica of `primary` (a running, ready container); returns its id and host
/// port. A container created here that fails to start is removed by `start_one`.
pub(super) async fn start(
    docker: &Docker,
    image: &str,
    primary: &str,
    password: &str,
    mode: Replication,
    labels: std::collections::HashMap<String, String>,
    deadline: Instant,
) -> Result<(String, u16), StackError> {
    let component = format!("postgres-replica container ({image})");
    exec_in(docker, primary, ALLOW_REPLICATION)
        .await
        .map_err(|reason| StackError::NotReady {
            component: component.clone(),
            reason: format!("allowing replication on the primary: {reason}"),
            log: String::new(),
        })?;
    let info = docker
        .inspect_container(primary, None::<InspectContainerOptions>)
        .await
        .map_err(|e| StackError::Docker(format!("inspect the primary {primary}: {e}")))?;
    let host = info
        .network_settings
        .and_then(|n| {
            n.networks?
                .into_values()
                .find_map(|e| e.ip_address.filter(|ip| !ip.is_empty()))
        })
        .ok_or_else(|| StackError::NotReady {
            component: component.clone(),
            reason: format!(
                "the primary container {primary} has no network address to replicate from"
            ),
            log: String::new(),
        })?;
    let commit = crate::stack::replica_commit_setting(mode);
    let plan = ContainerPlan {
        image: image.to_string(),
        entrypoint: Some(vec![
            "sh".into(),
            "-c".into(),
            REPLICA_SCRIPT.into(),
            "replica".into(),
        ]),
        user: Some("postgres".into()),
        cmd: [
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            commit,
            "-c",
            "synchronous_standby_names=",
        ]
        .map(str::to_string)
        .to_vec(),
        env: vec![
            format!("PGPASSWORD={password}"),
            format!("PRIMARY_HOST={host}"),
        ],
        labels,
        container_port: 5432,
        ready_line: "ready to accept read-only connections",
        ready_stream: LogStream::Stderr,
    };
    start_one(docker, &plan, &component, deadline, |addr| {
        health::postgres_accepting(addr, "loadgate", "loadgate")
    })
    .await
}

/// How long a `docker exec` of [`exec_in`] may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a `docker exec` in the primary failed (rendered into the replica's `NotReady` reason).
#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error("docker exec: {0}")]
    Create(#[source] bollard::errors::Error),
    #[error("docker exec start: {0}")]
    Start(#[source] bollard::errors::Error),
    #[error("docker exec output: {0}")]
    Output(#[source] bollard::errors::Error),
    #[error("docker exec did not finish within {} s", EXEC_TIMEOUT.as_secs())]
    Timeout,
    #[error("docker exec inspect: {0}")]
    Inspect(#[source] bollard::errors::Error),
    #[error("exited {code:?}: {output}")]
    Exited { code: Option<i64>, output: String },
}

/// `sh -c script` in `container` as `postgres`; Err with its output unless it exits 0.
async fn exec_in(docker: &Docker, container: &str, script: &str) -> Result<(), ExecError> {
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", script]),
                user: Some("postgres"),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(ExecError::Create)?;
    let mut text = String::new();
    let run = async {
        if let StartExecResults::Attached { mut output, .. } = docker
            .start_exec(&exec.id, None)
            .await
            .map_err(ExecError::Start)?
        {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(c) => text.push_str(&c.to_string()),
                    Err(e) => return Err(ExecError::Output(e)),
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(EXEC_TIMEOUT, run)
        .await
        .map_err(|_| ExecError::Timeout)??;
    let code = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(ExecError::Inspect)?
        .exit_code;
    match code {
        Some(0) => Ok(()),
        other => Err(ExecError::Exited {
            code: other,
            output: text.trim().to_string(),
        }),
    }
}
