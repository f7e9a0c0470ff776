//! Docker engine access for the containers backend: detection, reaping by label, and an
//! API-version bridge so testcontainers works with older engines.
//!
//! testcontainers 0.25 speaks Docker API 1.49 only (bollard's default, not negotiated), and
//! engines before Docker 28.1 (e.g. Debian bookworm's docker.io 20.10, API 1.41) reject it
//! ("client version 1.49 is too new"). When the engine's API is older, loadgate starts a
//! small in-process proxy on a Unix socket (mode 0600, under the state root) that rewrites
//! the `/v1.49/` prefix of each request path to the engine's version and forwards bytes
//! otherwise untouched, and points testcontainers at it with `DOCKER_HOST`. Request bodies
//! are framed (Content-Length / chunked) so keep-alive connections carry several requests;
//! after an `Upgrade` request the connection is piped raw. The proxy runs on its own thread
//! and runtime so container removal in `Drop` works from any context. The socket file is
//! unlinked at exit (atexit) and by the next reap when the owner was killed.
//!
//! Our own calls (ping, image checks, reaping, and the control handle's kill / stop / start /
//! pause / unpause of one container) use bollard with a negotiated version.
//!
//! Why the bridge is still needed (checked for issue 12): testcontainers builds its own bollard
//! client (`core/client/bollard_client.rs`: `Docker::connect_with_unix(host, timeout,
//! API_DEFAULT_VERSION)`) and never calls `negotiate_version`, in 0.25.2 and in its upstream
//! main; bollard 0.19 reads no `DOCKER_API_VERSION`-like variable, and testcontainers exposes
//! no way to hand it a client. Engines from Docker 28.1 on (API >= 1.49) never start the bridge;
//! Debian 12's docker.io 20.10 (API 1.41, the development machine's engine) needs it. It goes
//! when testcontainers negotiates, or when the containers backend drives bollard directly.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use testcontainers::bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use testcontainers::bollard::Docker;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::child;
use super::registry;
use super::StackError;

/// Label keys put on every container.
pub const LABEL_STACK: &str = "loadgate.stack";
pub const LABEL_PID: &str = "loadgate.pid";
pub const LABEL_PID_START: &str = "loadgate.pid_start";
pub const LABEL_HOST: &str = "loadgate.host";
pub const LABEL_COMPONENT: &str = "loadgate.component";

/// The API version testcontainers 0.25 sends.
const TESTCONTAINERS_API: (u32, u32) = (1, 49);

/// DOCKER_HOST as it was before loadgate pointed it at the bridge.
fn original_docker_host() -> &'static Option<String> {
    static ORIGINAL: OnceLock<Option<String>> = OnceLock::new();
    ORIGINAL.get_or_init(|| std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()))
}

/// Connects to the engine (DOCKER_HOST or the default socket) and negotiates the version;
/// fails within `timeout` when nothing answers.
pub async fn connect(timeout: Duration) -> Result<Docker, String> {
    let host = original_docker_host().clone();
    let docker = match &host {
        Some(h) if h.starts_with("unix://") => {
            Docker::connect_with_unix(h, 30, testcontainers::bollard::API_DEFAULT_VERSION)
        }
        Some(h) if h.starts_with("tcp://") || h.starts_with("http://") => {
            Docker::connect_with_http(h, 30, testcontainers::bollard::API_DEFAULT_VERSION)
        }
        Some(h) => {
            return Err(format!(
                "DOCKER_HOST `{h}` is not supported (use unix:// or tcp://)"
            ))
        }
        None => Docker::connect_with_local_defaults(),
    }
    .map_err(|e| format!("no Docker client: {e}"))?;
    let docker = tokio::time::timeout(timeout, docker.negotiate_version())
        .await
        .map_err(|_| "no Docker engine answered within the timeout".to_string())?
        .map_err(|e| format!("no Docker engine answers: {e}"))?;
    tokio::time::timeout(timeout, docker.ping())
        .await
        .map_err(|_| "the Docker engine did not answer ping".to_string())?
        .map_err(|e| format!("Docker ping failed: {e}"))?;
    Ok(docker)
}

/// Whether `image` exists in the engine's local store.
pub async fn image_present(docker: &Docker, image: &str) -> bool {
    docker.inspect_image(image).await.is_ok()
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Makes testcontainers able to talk to this engine: when its API is older than 1.49, start
/// the bridge (once per process) and point DOCKER_HOST at it.
pub async fn ensure_testcontainers_compat(docker: &Docker) -> Result<(), StackError> {
    static BRIDGE: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    let version = docker
        .version()
        .await
        .map_err(|e| StackError::Docker(format!("GET /version: {e}")))?;
    let api = version.api_version.as_deref().and_then(parse_version);
    let Some(api) = api else { return Ok(()) };
    if api >= TESTCONTAINERS_API {
        return Ok(());
    }
    if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| v == "1") {
        return Err(StackError::Docker(format!(
            "the engine speaks API {}.{} but testcontainers needs 1.49, and the TLS engine cannot be bridged; upgrade Docker to 28.1 or newer",
            api.0, api.1
        )));
    }
    let result = BRIDGE.get_or_init(|| start_bridge(api).map(Some));
    match result {
        Ok(Some(sock)) => {
            // Before any testcontainers call (it reads DOCKER_HOST when it creates its client).
            // SAFETY-ish: set once, from one place, before testcontainers' first use.
            std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display()));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(StackError::Docker(format!(
            "starting the API version bridge: {e}"
        ))),
    }
}

static BRIDGE_SOCKET: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn unlink_bridge_socket() {
    if let Some(p) = BRIDGE_SOCKET.get() {
        let _ = std::fs::remove_file(p);
        // The state root, when nothing else is in it.
        if let Some(dir) = p.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn bridge_socket_name(pid: u32) -> String {
    format!("docker-api-{pid}.sock")
}

#[derive(Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

fn upstream() -> Upstream {
    match original_docker_host() {
        Some(h) if h.starts_with("unix://") => Upstream::Unix(PathBuf::from(&h["unix://".len()..])),
        Some(h) if h.starts_with("tcp://") => {
            Upstream::Tcp(h["tcp://".len()..].trim_end_matches('/').to_string())
        }
        Some(h) if h.starts_with("http://") => {
            Upstream::Tcp(h["http://".len()..].trim_end_matches('/').to_string())
        }
        _ => Upstream::Unix(PathBuf::from("/var/run/docker.sock")),
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Upstream {
    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Upstream::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Upstream::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await?),
        })
    }
}

fn start_bridge(api: (u32, u32)) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut dir = registry::default_root();
    let name = bridge_socket_name(std::process::id());
    if dir.join(&name).as_os_str().len() > 100 {
        dir = std::env::temp_dir();
    }
    let path = dir.join(name);
    // Another process may remove the (empty) state root between create and bind: retry.
    let mut attempt = 0;
    let std_listener = loop {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&path);
        match std::os::unix::net::UnixListener::bind(&path) {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
            Err(e) => return Err(format!("bind {}: {e}", path.display())),
        }
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let _ = BRIDGE_SOCKET.set(path.clone());
    // SAFETY: registering a plain extern "C" function with atexit.
    unsafe {
        libc::atexit(unlink_bridge_socket);
    }
    let up = upstream();
    let version = format!("/v{}.{}/", api.0, api.1);
    std::thread::Builder::new()
        .name("loadgate-docker-bridge".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("bridge runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::UnixListener::from_std(std_listener).expect("bridge listener");
                loop {
                    let Ok((down, _)) = listener.accept().await else {
                        continue;
                    };
                    let up = up.clone();
                    let version = version.clone();
                    tokio::spawn(async move {
                        let _ = bridge_connection(down, up, version).await;
                    });
                }
            });
        })
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// Rewrites `/vX.Y/` at the start of a request target to `version`.
fn rewrite_target(target: &str, version: &str) -> String {
    if let Some(rest) = target.strip_prefix("/v") {
        if let Some(slash) = rest.find('/') {
            if rest[..slash]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
            {
                return format!("{version}{}", &rest[slash + 1..]);
            }
        }
    }
    target.to_string()
}

async fn bridge_connection(
    down: tokio::net::UnixStream,
    up: Upstream,
    version: String,
) -> std::io::Result<()> {
    let upstream = up.connect().await?;
    let (down_r, mut down_w) = down.into_split();
    let (up_r, mut up_w) = tokio::io::split(upstream);
    // Responses flow back untouched.
    let back = tokio::spawn(async move {
        let mut up_r = up_r;
        let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
        let _ = down_w.shutdown().await;
    });
    let mut reader = BufReader::new(down_r);
    let result = async {
        loop {
            // Request head.
            let mut head = Vec::new();
            loop {
                let n = reader.read_until(b'\n', &mut head).await?;
                if n == 0 {
                    return Ok(()); // client closed
                }
                if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
                    break;
                }
                if head.len() > 1 << 20 {
                    return Err(std::io::Error::other("request head too large"));
                }
            }
            if head == b"\r\n" {
                continue;
            }
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(&head).map_err(std::io::Error::other)?;
            let method = req.method.unwrap_or("GET").to_string();
            let target = rewrite_target(req.path.unwrap_or("/"), &version);
            let mut content_length = 0u64;
            let mut chunked = false;
            let mut upgrade = false;
            let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
            for h in req.headers.iter() {
                let name = h.name.to_ascii_lowercase();
                let value = String::from_utf8_lossy(h.value);
                match name.as_str() {
                    "content-length" => content_length = value.trim().parse().unwrap_or(0),
                    "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                    "upgrade" => upgrade = true,
                    _ => {}
                }
                out.extend_from_slice(h.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(h.value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            up_w.write_all(&out).await?;
            if upgrade {
                tokio::io::copy(&mut reader, &mut up_w).await?;
                return Ok(());
            }
            if chunked {
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    up_w.write_all(&line).await?;
                    let size_text = String::from_utf8_lossy(&line);
                    let size = u64::from_str_radix(
                        size_text.trim().split(';').next().unwrap_or("0").trim(),
                        16,
                    )
                    .map_err(std::io::Error::other)?;
                    if size == 0 {
                        // Trailers until the empty line.
                        loop {
                            let mut t = Vec::new();
                            if reader.read_until(b'\n', &mut t).await? == 0 {
                                return Ok(());
                            }
                            up_w.write_all(&t).await?;
                            if t == b"\r\n" {
                                break;
                            }
                        }
                        break;
                    }
                    let mut body = (&mut reader).take(size + 2);
                    tokio::io::copy(&mut body, &mut up_w).await?;
                }
            } else if content_length > 0 {
                let mut body = (&mut reader).take(content_length);
                tokio::io::copy(&mut body, &mut up_w).await?;
            }
            up_w.flush().await?;
        }
    }
    .await;
    let _ = up_w.shutdown().await;
    let _ = back.await;
    result
}

/// Removes bridge sockets left by killed processes.
pub fn remove_socket_leftovers(root: &Path) {
    for dir in [
        root.to_path_buf(),
        registry::default_root(),
        std::env::temp_dir(),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(pid) = name
                .strip_prefix("docker-api-")
                .and_then(|s| s.strip_suffix(".sock"))
            {
                if let Ok(pid) = pid.parse::<u32>() {
                    if !child::pid_alive(pid) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
    // The default state root, when nothing is left in it.
    let _ = std::fs::remove_dir(registry::default_root());
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
        let _ = docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
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
        let _ = docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

/// Force-removes the containers labelled `loadgate.stack=<stack>` and
/// `loadgate.component=<component>` (a container created by a start that failed, whose id
/// testcontainers does not return). Best effort.
pub async fn remove_component_containers(stack: &str, component: &str) {
    let Ok(docker) = connect(Duration::from_secs(3)).await else {
        return;
    };
    let label = format!("{LABEL_STACK}={stack}");
    let Ok(list) = list_labelled(&docker, &label, &format!("containers of {stack}")).await else {
        return;
    };
    for c in list {
        let labels = c.labels.unwrap_or_default();
        if labels.get(LABEL_COMPONENT).map(String::as_str) != Some(component) {
            continue;
        }
        if let Some(id) = c.id {
            let _ = docker
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
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
        .map_err(StackError::Docker)?;
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
async fn pause_with_retry(
    docker: &Docker,
    id: &str,
) -> Result<(), testcontainers::bollard::errors::Error> {
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
        .map_err(StackError::Docker)?;
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
        .map_err(StackError::Docker)?;
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
) -> Result<Vec<testcontainers::bollard::models::ContainerSummary>, StackError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_version_prefix() {
        assert_eq!(
            rewrite_target("/v1.49/containers/json?all=1", "/v1.41/"),
            "/v1.41/containers/json?all=1"
        );
        assert_eq!(rewrite_target("/_ping", "/v1.41/"), "/_ping");
        assert_eq!(
            rewrite_target("/volumes/v1.2/x", "/v1.41/"),
            "/volumes/v1.2/x"
        );
    }

    #[test]
    fn parses_api_versions() {
        assert_eq!(parse_version("1.41"), Some((1, 41)));
        assert!(parse_version("1.41") < Some(TESTCONTAINERS_API));
        assert_eq!(parse_version("x"), None);
    }
}
