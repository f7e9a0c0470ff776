//! Containers backend: Redis and PostgreSQL started with testcontainers.
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
//! Readiness: testcontainers waits for the server's "ready" log line, then loadgate probes
//! the published port (the official postgres image logs "ready" once for its init server).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testcontainers::core::logs::LogFrame;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::docker::{self, LABEL_COMPONENT, LABEL_HOST, LABEL_PID, LABEL_PID_START, LABEL_STACK};
use super::registry::SharedEntry;
use super::{child, health, registry, StackError};
use crate::spec::StackSpec;

pub const OFFICIAL_REDIS: &str = "redis:7";
pub const OFFICIAL_POSTGRES: &str = "postgres:15";
pub const LOCAL_REDIS: &str = "loadgate/redis:7-local";
pub const LOCAL_POSTGRES: &str = "loadgate/postgres:15-local";

const BUILD_HINT: &str = "run reference-stack/images/build.sh to build loadgate/redis:7-local and loadgate/postgres:15-local";

/// Redis and PostgreSQL containers; removed on drop.
pub struct ContainerServices {
    redis: Option<ContainerAsync<GenericImage>>,
    postgres: Option<ContainerAsync<GenericImage>>,
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
    docker: &testcontainers::bollard::Docker,
    explicit: Option<&str>,
    env_var: &str,
    official: &str,
    local: &str,
) -> Result<String, String> {
    if let Some(img) = explicit
        .map(str::to_string)
        .or_else(|| std::env::var(env_var).ok().filter(|s| !s.is_empty()))
    {
        return if docker::image_present(docker, &img).await {
            Ok(img)
        } else {
            Err(format!("image {img} is not in the local image store (pull or build it, or unset {env_var})"))
        };
    }
    for img in [official, local] {
        if docker::image_present(docker, img).await {
            return Ok(img.to_string());
        }
    }
    Err(format!(
        "neither {official} nor {local} is in the local image store; {BUILD_HINT}"
    ))
}

/// The (redis, postgres) images this spec would use, or why the backend cannot run.
pub async fn images(spec: &StackSpec) -> Result<(String, String), String> {
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
pub async fn available(spec: &StackSpec) -> Result<(), String> {
    images(spec).await.map(|_| ())
}

fn split_image(image: &str) -> (String, String) {
    // The tag follows the last ':' after the last '/' (a registry host may have a port).
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

type LogRing = Arc<Mutex<VecDeque<String>>>;

fn log_consumer(ring: LogRing) -> impl Fn(&LogFrame) + Send + Sync + 'static {
    move |frame: &LogFrame| {
        let bytes = match frame {
            LogFrame::StdOut(b) | LogFrame::StdErr(b) => b,
        };
        if let Ok(mut r) = ring.lock() {
            for line in String::from_utf8_lossy(bytes).lines() {
                r.push_back(line.to_string());
                if r.len() > 40 {
                    r.pop_front();
                }
            }
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

fn labelled(
    image: GenericImage,
    labels: &Labels,
    component: &str,
) -> testcontainers::ContainerRequest<GenericImage> {
    image
        .with_label(LABEL_STACK, &labels.stack)
        .with_label(LABEL_PID, &labels.pid)
        .with_label(LABEL_PID_START, &labels.pid_start)
        .with_label(LABEL_HOST, &labels.host)
        .with_label(LABEL_COMPONENT, component)
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
        what: e,
    })?;
    docker::ensure_testcontainers_compat(&docker).await?;
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
        redis_port: 0,
        postgres_port: 0,
        redis_url: String::new(),
        database_url: String::new(),
        redis_image: redis_image.clone(),
        postgres_image: postgres_image.clone(),
    };

    // Both containers start concurrently; each is probed on its published port. A request
    // is built per attempt (a port race retries with another host port).
    let redis_request = |host_port: u16| {
        labelled(
            GenericImage::new(split_image(&redis_image).0, split_image(&redis_image).1)
                .with_exposed_port(6379.tcp())
                .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections")),
            &labels,
            "redis",
        )
        .with_cmd([
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
        ])
        .with_mapped_port(host_port, 6379.tcp())
    };
    let pg_request = |host_port: u16| {
        labelled(
            GenericImage::new(
                split_image(&postgres_image).0,
                split_image(&postgres_image).1,
            )
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            )),
            &labels,
            "postgres",
        )
        .with_env_var("POSTGRES_PASSWORD", pg_password)
        .with_env_var("POSTGRES_USER", "loadgate")
        .with_env_var("POSTGRES_DB", "loadgate")
        .with_cmd([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ])
        .with_mapped_port(host_port, 5432.tcp())
    };

    let redis_component = format!("redis container ({redis_image})");
    let pg_component = format!("postgres container ({postgres_image})");
    let (redis, postgres) = tokio::join!(
        start_one(
            redis_request,
            stack_id,
            "redis",
            &redis_component,
            6379,
            ready_timeout,
            deadline,
            |addr| { health::redis_ping(addr, Some(redis_password)) }
        ),
        start_one(
            pg_request,
            stack_id,
            "postgres",
            &pg_component,
            5432,
            ready_timeout,
            deadline,
            |addr| { health::postgres_accepting(addr, "loadgate", "loadgate") }
        ),
    );
    // Keep whatever started (so it is removed with the stack), then report the first failure.
    let mut first_err = None;
    let mut ports = [0u16; 2];
    for (i, result) in [redis, postgres].into_iter().enumerate() {
        match result {
            Ok((container, port)) => {
                entry.add_container(container.id())?;
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

/// Starts one container with `request(host_port)` on a free host port, then probes that port
/// until `deadline`. When the port was taken between the pick and Docker's bind, the created
/// container (found by its labels: testcontainers does not return its id on a failed start)
/// is removed and the start is retried on another port, up to [`PORT_ATTEMPTS`] times.
#[allow(clippy::too_many_arguments)]
async fn start_one<R, F, Fut>(
    request: R,
    stack_id: &str,
    component_label: &str,
    component: &str,
    container_port: u16,
    ready_timeout: Duration,
    deadline: Instant,
    probe: F,
) -> Result<(ContainerAsync<GenericImage>, u16), StackError>
where
    R: Fn(u16) -> testcontainers::ContainerRequest<GenericImage>,
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let host_port = free_host_port().map_err(|e| StackError::Io {
            what: format!("{component}: pick a free host port"),
            source: e,
        })?;
        let ring: LogRing = Arc::default();
        let started = request(host_port)
            .with_startup_timeout(ready_timeout)
            .with_log_consumer(log_consumer(ring.clone()))
            .start()
            .await;
        let container = match started {
            Ok(c) => c,
            Err(e) => {
                let err = StackError::NotReady {
                    component: component.to_string(),
                    reason: e.to_string(),
                    log: ring_tail(&ring),
                };
                if port_taken(&format!("{e} {e:?}")) {
                    docker::remove_component_containers(stack_id, component_label).await;
                    last_err = Some(err);
                    continue;
                }
                return Err(err);
            }
        };
        let port = container
            .get_host_port_ipv4(container_port)
            .await
            .map_err(|e| {
                StackError::Docker(format!(
                    "{component}: published port of {container_port}: {e}"
                ))
            })?;
        if port != host_port {
            return Err(StackError::Docker(format!(
                "{component}: container port {container_port} was published on {port}, not on the requested host port {host_port}"
            )));
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        probe_until(component, &ring, deadline, || probe(addr)).await?;
        return Ok((container, port));
    }
    Err(last_err.expect("at least one attempt"))
}

async fn probe_until<F, Fut>(
    component: &str,
    ring: &LogRing,
    deadline: Instant,
    mut probe: F,
) -> Result<(), StackError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
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
        self.redis.as_ref().map(|c| c.id().to_string())
    }

    /// The postgres container's id.
    pub fn postgres_id(&self) -> Option<String> {
        self.postgres.as_ref().map(|c| c.id().to_string())
    }

    /// Container ids (redis, postgres).
    pub fn ids(&self) -> Vec<String> {
        self.redis
            .iter()
            .chain(self.postgres.iter())
            .map(|c| c.id().to_string())
            .collect()
    }

    /// Removes both containers (force), reporting the first failure.
    pub async fn remove(mut self) -> Result<(), StackError> {
        let mut result = Ok(());
        for c in [self.redis.take(), self.postgres.take()]
            .into_iter()
            .flatten()
        {
            let id = c.id().to_string();
            if let Err(e) = c.rm().await {
                if result.is_ok() {
                    result = Err(StackError::Docker(format!("removing container {id}: {e}")));
                }
            }
        }
        result
    }

    /// Removes both containers from synchronous code (Drop), inside or outside a runtime.
    pub fn remove_blocking(mut self) {
        remove_containers_blocking(
            [self.redis.take(), self.postgres.take()]
                .into_iter()
                .flatten()
                .collect(),
        );
    }
}

fn remove_containers_blocking(containers: Vec<ContainerAsync<GenericImage>>) {
    if containers.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        // testcontainers' Drop removes the container (block_in_place or its drop worker).
        drop(containers);
    } else {
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async move { drop(containers) });
            }
        })
        .join();
    }
}

impl Drop for ContainerServices {
    fn drop(&mut self) {
        remove_containers_blocking(
            [self.redis.take(), self.postgres.take()]
                .into_iter()
                .flatten()
                .collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn recognises_port_races() {
        use super::port_taken;
        assert!(port_taken("driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:4321 failed: port is already allocated"));
        assert!(port_taken(
            "Error starting userland proxy: listen tcp4 0.0.0.0:4321: bind: address already in use"
        ));
        assert!(!port_taken("No such image: loadgate/redis:7-local"));
    }

    #[test]
    fn splits_names_and_tags() {
        assert_eq!(split_image("redis:7"), ("redis".into(), "7".into()));
        assert_eq!(
            split_image("loadgate/redis:7-local"),
            ("loadgate/redis".into(), "7-local".into())
        );
        assert_eq!(
            split_image("reg:5000/x/pg"),
            ("reg:5000/x/pg".into(), "latest".into())
        );
        assert_eq!(
            split_image("reg:5000/x/pg:15"),
            ("reg:5000/x/pg".into(), "15".into())
        );
    }
}
