//! Containers backend: Redis and PostgreSQL started as Docker containers through bollard.
//!
//! Why bollard directly and not testcontainers (which is built on bollard): testcontainers
//! 0.25 (and its upstream main) builds its own client pinned to Docker API 1.49 and never
//! negotiates, so an engine older than Docker 28.1 (Debian 12's docker.io 20.10 speaks API
//! 1.41) rejects every call; loadgate used to run a version-rewriting socket proxy in front
//! of it. bollard's `negotiate_version` speaks whatever the engine speaks, and what
//! testcontainers did for us here is small: create with labels and port bindings, start, wait
//! for a log line, remove. That is this file.
//!
//! Images: `StackSpec.redis_image` / `postgres_image`, else `$LOADGATE_REDIS_IMAGE` /
//! `$LOADGATE_POSTGRES_IMAGE`, else the official `redis:7` / `postgres:15` when they are in
//! the local image store, else the locally built `loadgate/redis:7-local` /
//! `loadgate/postgres:15-local` (reference-stack/images/build.sh). Nothing is pulled
//! implicitly for the defaults: a missing image is an error that says how to build it.
//!
//! Every container carries the labels `loadgate.stack=<id>`, `loadgate.pid=<owner pid>`,
//! `loadgate.pid_start`, `loadgate.host`, `loadgate.component` (see [`super::docker`]) so a
//! later start reaps containers whose owner was killed. Each port is published on a host port
//! loadgate picks (free at the time, all interfaces, Docker's default), reached through
//! 127.0.0.1; Redis therefore requires a password and PostgreSQL uses scram-sha-256. The host
//! port is fixed in the container's port bindings rather than left to Docker (whose random
//! port may change on `docker start`), so REDIS_URL / DATABASE_URL and the gateways' URLs
//! stay valid across the control handle's kill / stop + start. A start that lost its port
//! to another process between the pick and the bind is retried on a new port.
//! Readiness: loadgate follows the container's log until the server's "ready" line (as
//! testcontainers' `WaitFor::message_on_*` did), then probes the published port (the official
//! postgres image logs "ready" once for its init server too). A container that fails to
//! start or become ready is removed before the error is returned, with its last log lines in
//! the message.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptionsBuilder, StartContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;

mod replica;

use super::docker::{
    self, EngineError, LABEL_COMPONENT, LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_STACK,
};
use super::registry::SharedEntry;
use super::{child, health, registry, StackError};
use crate::spec::StackSpec;

pub const OFFICIAL_REDIS: &str = "redis:7";
pub const OFFICIAL_POSTGRES: &str = "postgres:15";
pub const LOCAL_REDIS: &str = "loadgate/redis:7-local";
pub const LOCAL_POSTGRES: &str = "loadgate/postgres:15-local";

const BUILD_HINT: &str = "run reference-stack/images/build.sh to build loadgate/redis:7-local and loadgate/postgres:15-local";

/// Redis and PostgreSQL containers (their ids); removed on drop.
pub struct ContainerServices {
    redis: Option<String>,
    postgres: Option<String>,
    /// The streaming replica (`stack.reference.postgres.replica`), see [`replica`].
    postgres_replica: Option<String>,
    /// Host port published for the replica's 5432 (0: no replica).
    pub postgres_replica_port: u16,
    /// Host ports published for 6379 and 5432 (fixed for the containers' lifetime).
    pub redis_port: u16,
    pub postgres_port: u16,
    pub redis_url: String,
    pub database_url: String,
    pub redis_image: String,
    pub postgres_image: String,
}

impl std::fmt::Debug for ContainerServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerServices")
            .field("ids", &self.ids())
            .field("redis_image", &self.redis_image)
            .field("postgres_image", &self.postgres_image)
            .finish()
    }
}

/// Which image to use for one service (see the module doc).
async fn pick_image(
    docker: &Docker,
    explicit: Option<&str>,
    env_var: &'static str,
    official: &'static str,
    local: &'static str,
) -> Result<String, EngineError> {
    if let Some(img) = explicit
        .map(str::to_string)
        .or_else(|| std::env::var(env_var).ok().filter(|s| !s.is_empty()))
    {
        return if docker::image_present(docker, &img).await {
            Ok(img)
        } else {
            Err(EngineError::ImageMissing {
                image: img,
                env_var,
            })
        };
    }
    for img in [official, local] {
        if docker::image_present(docker, img).await {
            return Ok(img.to_string());
        }
    }
    Err(EngineError::NoImage {
        official,
        local,
        hint: BUILD_HINT,
    })
}

/// The (redis, postgres) images this spec would use, or why the backend cannot run.
pub async fn images(spec: &StackSpec) -> Result<(String, String), EngineError> {
    let docker = docker::connect(Duration::from_secs(3)).await?;
    let redis = pick_image(
        &docker,
        spec.redis_image.as_deref(),
        "LOADGATE_REDIS_IMAGE",
        OFFICIAL_REDIS,
        LOCAL_REDIS,
    )
    .await?;
    let pg = pick_image(
        &docker,
        spec.postgres_image.as_deref(),
        "LOADGATE_POSTGRES_IMAGE",
        OFFICIAL_POSTGRES,
        LOCAL_POSTGRES,
    )
    .await?;
    Ok((redis, pg))
}

/// Ok when a Docker engine answers and both images are present.
pub async fn available(spec: &StackSpec) -> Result<(), EngineError> {
    images(spec).await.map(|_| ())
}

type LogRing = Arc<Mutex<VecDeque<String>>>;

/// Keeps the container's last 40 log lines (for the error message of a failed start).
fn push_log(ring: &LogRing, bytes: &[u8]) {
    let mut r = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for line in String::from_utf8_lossy(bytes).lines() {
        r.push_back(line.to_string());
        if r.len() > 40 {
            r.pop_front();
        }
    }
}

fn ring_tail(ring: &LogRing) -> String {
    ring.lock()
        .map(|r| r.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

struct Labels {
    stack: String,
    pid: String,
    pid_start: String,
    host: String,
}

impl Labels {
    fn for_component(&self, component: &str) -> HashMap<String, String> {
        [
            (LABEL_STACK, self.stack.as_str()),
            (LABEL_PID, self.pid.as_str()),
            (LABEL_PID_START, self.pid_start.as_str()),
            (LABEL_HOST, self.host.as_str()),
            (LABEL_COMPONENT, component),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// Which output stream carries a server's readiness line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogStream {
    Stdout,
    Stderr,
}

/// What one container is: image, command, environment, the port it serves and the log line
/// that says it is ready.
struct ContainerPlan {
    image: String,
    /// Replaces the image's entrypoint (None: the image's).
    entrypoint: Option<Vec<String>>,
    /// The user the container runs as (None: the image's).
    user: Option<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    labels: HashMap<String, String>,
    container_port: u16,
    ready_line: &'static str,
    ready_stream: LogStream,
}

impl ContainerPlan {
    /// The engine's create body, publishing `container_port` on `host_port` (all interfaces,
    /// Docker's default; fixed in the port bindings so a `docker start` keeps it).
    fn create_body(&self, host_port: u16) -> ContainerCreateBody {
        let key = format!("{}/tcp", self.container_port);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: self.entrypoint.clone(),
            user: self.user.clone(),
            cmd: Some(self.cmd.clone()),
            env: Some(self.env.clone()),
            labels: Some(self.labels.clone()),
            exposed_ports: Some(HashMap::from([(key.clone(), HashMap::new())])),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    key,
                    Some(vec![PortBinding {
                        host_ip: None,
                        host_port: Some(host_port.to_string()),
                    }]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Starts both containers, records them in `entry`, waits until both accept connections.
/// On failure every container labelled with this stack is removed, including ones that
/// were created but never started (testcontainers does not remove those).
pub async fn start(
    spec: &StackSpec,
    entry: &SharedEntry,
    stack_id: &str,
    redis_password: &str,
    pg_password: &str,
    ready_timeout: Duration,
) -> Result<ContainerServices, StackError> {
    match start_inner(
        spec,
        entry,
        stack_id,
        redis_password,
        pg_password,
        ready_timeout,
    )
    .await
    {
        Ok(s) => Ok(s),
        Err(e) => {
            docker::remove_stack_containers(stack_id).await;
            Err(e)
        }
    }
}

async fn start_inner(
    spec: &StackSpec,
    entry: &SharedEntry,
    stack_id: &str,
    redis_password: &str,
    pg_password: &str,
    ready_timeout: Duration,
) -> Result<ContainerServices, StackError> {
    let docker =
        docker::connect(Duration::from_secs(5))
            .await
            .map_err(|e| StackError::Missing {
                backend: "containers",
                what: format!("a Docker engine ({e})"),
            })?;
    let (redis_image, postgres_image) = images(spec).await.map_err(|e| StackError::Missing {
        backend: "containers",
        what: e.to_string(),
    })?;
    let owner = std::process::id();
    let labels = Labels {
        stack: stack_id.to_string(),
        pid: owner.to_string(),
        pid_start: child::proc_start(owner).unwrap_or(0).to_string(),
        host: registry::hostname(),
    };
    let deadline = Instant::now() + ready_timeout;
    let mut services = ContainerServices {
        redis: None,
        postgres: None,
        postgres_replica: None,
        postgres_replica_port: 0,
        redis_port: 0,
        postgres_port: 0,
        redis_url: String::new(),
        database_url: String::new(),
        redis_image: redis_image.clone(),
        postgres_image: postgres_image.clone(),
    };

    // Both containers start concurrently; each is probed on its published port.
    let redis_plan = ContainerPlan {
        image: redis_image.clone(),
        entrypoint: None,
        user: None,
        cmd: [
            "redis-server",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            redis_password,
        ]
        .map(str::to_string)
        .to_vec(),
        env: Vec::new(),
        labels: labels.for_component("redis"),
        container_port: 6379,
        ready_line: "Ready to accept connections",
        ready_stream: LogStream::Stdout,
    };
    let mut pg_cmd: Vec<String> = [
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    .map(str::to_string)
    .to_vec();
    pg_cmd.extend(
        super::primary_commit_args(spec.postgres_replica)
            .iter()
            .map(|a| a.to_string()),
    );
    let pg_plan = ContainerPlan {
        image: postgres_image.clone(),
        entrypoint: None,
        user: None,
        cmd: pg_cmd,
        env: vec![
            format!("POSTGRES_PASSWORD={pg_password}"),
            "POSTGRES_USER=loadgate".to_string(),
            "POSTGRES_DB=loadgate".to_string(),
        ],
        labels: labels.for_component("postgres"),
        container_port: 5432,
        ready_line: "database system is ready to accept connections",
        ready_stream: LogStream::Stderr,
    };

    let redis_component = format!("redis container ({redis_image})");
    let pg_component = format!("postgres container ({postgres_image})");
    let (redis, postgres) = tokio::join!(
        start_one(&docker, &redis_plan, &redis_component, deadline, |addr| {
            health::redis_ping(addr, Some(redis_password))
        }),
        start_one(&docker, &pg_plan, &pg_component, deadline, |addr| {
            health::postgres_accepting(addr, "loadgate", "loadgate")
        }),
    );
    // Keep whatever started (so it is removed with the stack), then report the first failure.
    let mut first_err = None;
    let mut ports = [0u16; 2];
    for (i, result) in [redis, postgres].into_iter().enumerate() {
        match result {
            Ok((container, port)) => {
                entry.add_container(&container)?;
                ports[i] = port;
                if i == 0 {
                    services.redis = Some(container);
                } else {
                    services.postgres = Some(container);
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    services.redis_port = ports[0];
    services.postgres_port = ports[1];
    if let (Some(mode), Some(primary)) = (spec.postgres_replica, services.postgres.clone()) {
        let (id, port) = replica::start(
            &docker,
            &postgres_image,
            &primary,
            pg_password,
            mode,
            labels.for_component("postgres-replica"),
            deadline,
        )
        .await?;
        entry.add_container(&id)?;
        services.postgres_replica = Some(id);
        services.postgres_replica_port = port;
    }
    services.redis_url = format!("redis://default:{redis_password}@127.0.0.1:{}/0", ports[0]);
    services.database_url = format!(
        "postgres://loadgate:{pg_password}@127.0.0.1:{}/loadgate",
        ports[1]
    );
    Ok(services)
}

/// Port races (another process binds the picked host port before Docker does) are retried.
const PORT_ATTEMPTS: usize = 3;

/// A host port that is free on every interface right now (Docker publishes on 0.0.0.0),
/// from below the ephemeral range (see [`health::free_port_on`]).
fn free_host_port() -> std::io::Result<u16> {
    health::free_port_on(std::net::Ipv4Addr::UNSPECIFIED.into())
}

/// Whether a container start failed because its host port was taken.
fn port_taken(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("port is already allocated") || e.contains("address already in use")
}

/// Starts one container from `plan` on a free host port, waits for its readiness log line,
/// then probes that port until `deadline`. When the port was taken between the pick and
/// Docker's bind, the created container is removed and the start is retried on another
/// port, up to [`PORT_ATTEMPTS`] times. Returns the container's id and host port; a container
/// that failed to start is removed before the error is returned.
async fn start_one<F, Fut>(
    docker: &Docker,
    plan: &ContainerPlan,
    component: &str,
    deadline: Instant,
    probe: F,
) -> Result<(String, u16), StackError>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<(), health::HealthError>>,
{
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let host_port = free_host_port().map_err(|e| StackError::Io {
            what: format!("{component}: pick a free host port"),
            source: e,
        })?;
        let id = docker
            .create_container(None::<CreateContainerOptions>, plan.create_body(host_port))
            .await
            .map_err(|e| StackError::Docker(format!("{component}: create container: {e}")))?
            .id;
        let ring: LogRing = Arc::default();
        let result = match docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
        {
            Err(e) if port_taken(&e.to_string()) => {
                docker::remove_container(docker, &id).await;
                last_err = Some(StackError::NotReady {
                    component: component.to_string(),
                    reason: format!("host port {host_port} was taken: {e}"),
                    log: String::new(),
                });
                continue;
            }
            Err(e) => Err(StackError::NotReady {
                component: component.to_string(),
                reason: format!("start: {e}"),
                log: String::new(),
            }),
            Ok(()) => {
                let addr: SocketAddr = ([127, 0, 0, 1], host_port).into();
                match wait_for_line(docker, &id, plan, component, &ring, deadline).await {
                    Ok(()) => probe_until(component, &ring, deadline, || probe(addr)).await,
                    Err(e) => Err(e),
                }
            }
        };
        return match result {
            Ok(()) => Ok((id, host_port)),
            Err(e) => {
                docker::remove_container(docker, &id).await;
                Err(e)
            }
        };
    }
    Err(last_err.expect("at least one attempt"))
}

/// Follows the container's log until `plan.ready_line` appears on its stream (testcontainers'
/// `WaitFor::message_on_*`), keeping the last lines in `ring`. The log ending first (the
/// server exited) or the deadline passing is an error carrying those lines.
async fn wait_for_line(
    docker: &Docker,
    id: &str,
    plan: &ContainerPlan,
    component: &str,
    ring: &LogRing,
    deadline: Instant,
) -> Result<(), StackError> {
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .tail("all")
        .build();
    let mut logs = std::pin::pin!(docker.logs(id, Some(options)));
    let not_ready = |reason: String| StackError::NotReady {
        component: component.to_string(),
        reason,
        log: ring_tail(ring),
    };
    // A line may arrive split over frames: match on the stream's text so far (bounded).
    let mut seen = String::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(remaining, logs.next()).await;
        let frame = match next {
            Err(_) => {
                return Err(not_ready(format!(
                    "no \"{}\" in its log before the timeout",
                    plan.ready_line
                )))
            }
            Ok(None) => return Err(not_ready("the container's log ended (it exited)".into())),
            Ok(Some(Err(e))) => return Err(not_ready(format!("reading its log: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        let (stream, bytes) = match &frame {
            LogOutput::StdOut { message } => (LogStream::Stdout, message),
            LogOutput::StdErr { message } => (LogStream::Stderr, message),
            LogOutput::StdIn { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, message)
            }
        };
        push_log(ring, bytes);
        if stream == plan.ready_stream {
            seen.push_str(&String::from_utf8_lossy(bytes));
            if seen.contains(plan.ready_line) {
                return Ok(());
            }
            // Keep only the tail that could still start a match.
            if seen.len() > 4096 {
                let cut = seen.len() - plan.ready_line.len();
                let cut = (cut..seen.len())
                    .find(|&i| seen.is_char_boundary(i))
                    .unwrap_or(seen.len());
                seen.drain(..cut);
            }
        }
    }
}

async fn probe_until<F, Fut>(
    component: &str,
    ring: &LogRing,
    deadline: Instant,
    mut probe: F,
) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), health::HealthError>>,
{
    loop {
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(StackError::NotReady {
                component: component.to_string(),
                reason: format!(
                    "the published port did not answer before the timeout (last probe: {last})"
                ),
                log: ring_tail(ring),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl ContainerServices {
    /// The redis container's id.
    pub fn redis_id(&self) -> Option<String> {
        self.redis.clone()
    }

    /// The postgres container's id.
    pub fn postgres_id(&self) -> Option<String> {
        self.postgres.clone()
    }

    /// The postgres replica container's id, when there is one.
    pub fn postgres_replica_id(&self) -> Option<String> {
        self.postgres_replica.clone()
    }

    /// Container ids (redis, postgres, the replica).
    pub fn ids(&self) -> Vec<String> {
        self.redis
            .iter()
            .chain(self.postgres.iter())
            .chain(self.postgres_replica.iter())
            .cloned()
            .collect()
    }

    fn take_ids(&mut self) -> Vec<String> {
        [
            self.postgres_replica.take(),
            self.redis.take(),
            self.postgres.take(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Removes both containers (force, with their anonymous volumes), reporting the first
    /// failure.
    pub async fn remove(mut self) -> Result<(), StackError> {
        let ids = self.take_ids();
        if ids.is_empty() {
            return Ok(());
        }
        let docker = docker::connect(Duration::from_secs(5))
            .await
            .map_err(|e| StackError::Docker(e.to_string()))?;
        let mut result = Ok(());
        for id in ids {
            if let Err(e) = docker::try_remove_container(&docker, &id).await {
                if result.is_ok() {
                    result = Err(StackError::Docker(format!("removing container {id}: {e}")));
                }
            }
        }
        result
    }

    /// Removes both containers from synchronous code (Drop), inside or outside a runtime.
    pub fn remove_blocking(mut self) {
        docker::remove_containers_blocking(self.take_ids());
    }
}

impl Drop for ContainerServices {
    fn drop(&mut self) {
        docker::remove_containers_blocking(self.take_ids());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_port_races() {
        use super::port_taken;
        assert!(port_taken("driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:4321 failed: port is already allocated"));
        assert!(port_taken(
            "Error starting userland proxy: listen tcp4 0.0.0.0:4321: bind: address already in use"
        ));
        assert!(!port_taken("No such image: loadgate/redis:7-local"));
    }
}
