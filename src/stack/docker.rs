//! Docker engine access for the containers backend and the control handle: connecting with
//! a negotiated API version, image checks, container removal, reaping containers whose
//! owner is gone (by label), and the control handle's kill / stop / start / pause / unpause.
//!
//! Every client negotiates (`Docker::negotiate_version`), so any engine from API 1.24 on
//! works: Debian 12's docker.io 20.10 (API 1.41) as well as current Docker (1.50). Clients
//! are made per operation: bollard clients keep connections tied to the runtime that made
//! them, and a stack outlives runtimes in tests.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;

use super::child;
use super::registry;
use super::StackError;

/// Label keys put on every container.
pub const LABEL_STACK: &str = "loadgate.stack";
pub const LABEL_PID: &str = "loadgate.pid";
pub const LABEL_PID_START: &str = "loadgate.pid_start";
pub const LABEL_HOST: &str = "loadgate.host";
pub const LABEL_COMPONENT: &str = "loadgate.component";

/// Why the engine or an image cannot be used; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DOCKER_HOST `{0}` is not supported (use unix:// or tcp://, or unset it for the default socket)")]
    UnsupportedHost(String),
    #[error("no Docker client: {0}")]
    Client(#[source] bollard::errors::Error),
    #[error("no Docker engine answered within {0:?} (is dockerd running? is DOCKER_HOST right?)")]
    Timeout(Duration),
    #[error("no Docker engine answers: {0}")]
    Unreachable(#[source] bollard::errors::Error),
    #[error(
        "image {image} is not in the local image store (pull or build it, or unset {env_var})"
    )]
    ImageMissing {
        image: String,
        env_var: &'static str,
    },
    #[error("neither {official} nor {local} is in the local image store; {hint}")]
    NoImage {
        official: &'static str,
        local: &'static str,
        hint: &'static str,
    },
}

/// DOCKER_HOST, read once.
fn original_docker_host() -> &'static Option<String> {
    static ORIGINAL: OnceLock<Option<String>> = OnceLock::new();
    ORIGINAL.get_or_init(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
}

/// Connects to the engine (DOCKER_HOST or the default socket) and negotiates the API
/// version; fails within `timeout` when nothing answers.
pub async fn connect(timeout: Duration) -> Result<Docker, EngineError> {
    let host = original_docker_host().clone();
    let docker = match &host {
        Some(h) if h.starts_with("unix://") => {
            Docker::connect_with_unix(h, 30, bollard::API_DEFAULT_VERSION)
        }
        Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
            Docker::connect_with_http(h, 30, bollard::API_DEFAULT_VERSION)
        }
        Some(h) => return Err(EngineError::UnsupportedHost(h.clone())),
        None => Docker::connect_with_local_defaults(),
    }
    .map_err(EngineError::Client)?;
    let docker = tokio::time::timeout(timeout, docker.negotiate_version())
        .await
        .map_err(|_| EngineError::Timeout(timeout))?
        .map_err(EngineError::Unreachable)?;
    tokio::time::timeout(timeout, docker.ping())
        .await
        .map_err(|_| EngineError::Timeout(timeout))?
        .map_err(EngineError::Unreachable)?;
    Ok(docker)
}

/// Whether `image` exists in the engine's local store.
pub async fn image_present(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

/// `docker rm -f -v ID`.
pub async fn try_remove_container(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
}

/// `docker rm -f -v ID`, best effort: a failure is logged (the next start's reaper removes
/// what is left by label).
pub async fn remove_container(docker: &Docker, id: &str) {
    if let Err(e) = try_remove_container(docker, id).await {
        tracing::warn!(container = id, error = %e, "removing container failed");
    }
}

/// Removes containers from synchronous code (Drop), on a helper thread with its own runtime,
/// so it works inside or outside a runtime. Best effort (failures are logged).
pub fn remove_containers_blocking(ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let joined = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "no runtime to remove containers");
                return;
            }
        };
        rt.block_on(async move {
            match connect(Duration::from_secs(5)).await {
                Ok(docker) => {
                    for id in ids {
                        remove_container(&docker, &id).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, ?ids, "cannot remove containers"),
            }
        });
    })
    .join();
    if joined.is_err() {
        tracing::warn!("the container removal thread panicked");
    }
}

/// Force-removes `extra` container ids and every container on this host labelled by a
/// loadgate process that is gone. No engine: nothing to do. Returns how many stacks' worth
/// of containers were removed. Blocking; runs its own runtime on a helper thread.
pub fn reap_containers(extra: Vec<String>) -> Result<usize, StackError> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StackError::Io {
                what: "runtime for reaping containers".into(),
                source: e,
            })?;
        rt.block_on(reap_containers_async(extra))
    })
    .join()
    .map_err(|_| StackError::Docker("the container reaper panicked".into()))?
}

async fn reap_containers_async(extra: Vec<String>) -> Result<usize, StackError> {
    let Ok(docker) = connect(Duration::from_secs(3)).await else {
        return Ok(0);
    };
    let host = registry::hostname();
    let list = list_labelled(&docker, LABEL_STACK, "loadgate containers").await?;
    let mut stacks = BTreeSet::new();
    let mut ids: Vec<String> = extra;
    for c in list {
        let labels = c.labels.unwrap_or_default();
        if labels.get(LABEL_HOST).map(String::as_str) != Some(host.as_str()) {
            continue; // another machine's (shared engine): its owner is not ours to judge
        }
        let pid: Option<u32> = labels.get(LABEL_PID).and_then(|p| p.parse().ok());
        let start: Option<u64> = labels.get(LABEL_PID_START).and_then(|p| p.parse().ok());
        let owner_alive = match (pid, start) {
            (Some(pid), Some(start)) => {
                child::pid_alive(pid) && child::proc_start(pid) == Some(start)
            }
            (Some(pid), None) => child::pid_alive(pid),
            _ => true, // no owner label: leave it alone
        };
        if !owner_alive {
            if let Some(id) = c.id {
                if let Some(stack) = labels.get(LABEL_STACK) {
                    stacks.insert(stack.clone());
                }
                ids.push(id);
            }
        }
    }
    ids.sort();
    ids.dedup();
    for id in &ids {
        remove_container(&docker, id).await;
    }
    Ok(stacks.len())
}

/// Force-removes every container labelled `loadgate.stack=<stack>` (best effort).
pub async fn remove_stack_containers(stack: &str) {
    let Ok(docker) = connect(Duration::from_secs(3)).await else {
        return;
    };
    let Ok(ids) = containers_of_stack(stack).await else {
        return;
    };
    for id in ids {
        remove_container(&docker, &id).await;
    }
}

/// What the engine says about one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerRunState {
    pub running: bool,
    pub paused: bool,
}

/// One container operation of the control handle, on a fresh negotiated client (bollard
/// clients keep connections tied to the runtime that made them; a stack outlives runtimes
/// in tests, so nothing is cached).
pub async fn container_op(id: &str, op: ContainerOp) -> Result<(), StackError> {
    let docker = connect(Duration::from_secs(5))
        .await
        .map_err(|e| StackError::Docker(e.to_string()))?;
    let short = &id[..id.len().min(12)];
    let result = match op {
        ContainerOp::Kill => {
            docker
                .kill_container(
                    id,
                    Some(KillContainerOptions {
                        signal: "SIGKILL".into(),
                    }),
                )
                .await
        }
        ContainerOp::Stop { timeout_s } => {
            docker
                .stop_container(
                    id,
                    Some(StopContainerOptions {
                        t: Some(timeout_s),
                        signal: None,
                    }),
                )
                .await
        }
        ContainerOp::Start => {
            docker
                .start_container(id, None::<StartContainerOptions>)
                .await
        }
        ContainerOp::Pause => pause_with_retry(&docker, id).await,
        ContainerOp::Unpause => docker.unpause_container(id).await,
    };
    result.map_err(|e| StackError::Docker(format!("docker {} {short}: {e}", op.verb())))
}

/// `docker pause`, retried while the engine's freezer gives up. The cgroup freezer fails
/// ("OCI runtime pause failed: unable to freeze") when the container's processes are forking
/// at that moment (PostgreSQL starting its background workers right after a start); runc
/// retries only briefly, so the call is repeated a few times with a growing pause (at most
/// about 3 s in all) before the error is reported.
async fn pause_with_retry(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let mut delay = Duration::from_millis(100);
    for _ in 0..5 {
        match docker.pause_container(id).await {
            Err(e) if e.to_string().contains("unable to freeze") => {
                tracing::warn!(container = id, error = %e, "pause: freezer busy, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    docker.pause_container(id).await
}

/// The container operations the control handle uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerOp {
    /// `docker kill` (SIGKILL).
    Kill,
    /// `docker stop -t timeout_s` (stop signal, then SIGKILL after the timeout).
    Stop {
        timeout_s: i32,
    },
    Start,
    Pause,
    Unpause,
}

impl ContainerOp {
    /// The docker CLI verb, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            ContainerOp::Kill => "kill",
            ContainerOp::Stop { .. } => "stop",
            ContainerOp::Start => "start",
            ContainerOp::Pause => "pause",
            ContainerOp::Unpause => "unpause",
        }
    }
}

/// Running / paused state and the host port published for `container_port`/tcp.
pub async fn inspect_run_state(
    id: &str,
    container_port: u16,
) -> Result<(ContainerRunState, Option<u16>), StackError> {
    let docker = connect(Duration::from_secs(5))
        .await
        .map_err(|e| StackError::Docker(e.to_string()))?;
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| StackError::Docker(format!("inspect container {id}: {e}")))?;
    let state = info.state.unwrap_or_default();
    let run = ContainerRunState {
        running: state.running.unwrap_or(false),
        paused: state.paused.unwrap_or(false),
    };
    // HostConfig.PortBindings is what Docker binds on every start (the running
    // NetworkSettings.Ports is empty while the container is stopped).
    let key = format!("{container_port}/tcp");
    let port = info
        .host_config
        .and_then(|h| h.port_bindings)
        .and_then(|b| b.get(&key).cloned().flatten())
        .and_then(|v| v.into_iter().find_map(|b| b.host_port?.parse().ok()));
    Ok((run, port))
}

/// Unpauses `ids` from synchronous code (Drop), on a helper thread with its own runtime:
/// a paused container's processes cannot act on the stop signal of a later removal.
/// Best effort.
pub fn unpause_blocking(ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async move {
                for id in ids {
                    let _ = container_op(&id, ContainerOp::Unpause).await;
                }
            });
        }
    })
    .join();
}

/// Ids of the containers carrying `loadgate.stack=<stack>` (for tests and status).
pub async fn containers_of_stack(stack: &str) -> Result<Vec<String>, StackError> {
    let docker = connect(Duration::from_secs(3))
        .await
        .map_err(|e| StackError::Docker(e.to_string()))?;
    let label = format!("{LABEL_STACK}={stack}");
    let list = list_labelled(&docker, &label, &format!("containers of {stack}")).await?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// All containers (running or not) matching a docker `label` filter (`key` or `key=value`);
/// `what` names them in the error.
async fn list_labelled(
    docker: &Docker,
    label: &str,
    what: &str,
) -> Result<Vec<bollard::models::ContainerSummary>, StackError> {
    let mut filters = HashMap::new();
    filters.insert("label".to_string(), vec![label.to_string()]);
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| StackError::Docker(format!("listing {what}: {e}")))
}
