//! The stack control handle: kill / stop / start / restart / pause / resume per component on
//! the process and containers backends (same port afterwards, answering its protocol), the
//! gateway recovering after its dependencies come back, shutdown and drop after a pause and
//! a kill leaving nothing behind, exec hooks (environment, output tails, timeout kills the
//! group) and the external backend's refusal. Component / operation names parse and print.
//!
//! Every wait is for an observable condition with a deadline. Gateway tests skip with a
//! printed reason without the gateway binary (LOADGATE_REQUIRE_GATEWAY=1 fails instead);
//! container tests skip without a Docker engine (LOADGATE_REQUIRE_DOCKER=1 fails instead).

mod stack_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loadgate::spec::{EdgeStrategy, StackBackend, StackSpec};
use loadgate::stack::{
    self, child, docker, health, registry, Component, ComponentState, ControlError, ExecHook,
    StackHandle, StackOp,
};
use stack_support::*;

/// How long a paused component is given to (wrongly) answer.
const PAUSED_SILENCE: Duration = Duration::from_secs(1);

fn redis_password(env: &[(String, String)]) -> String {
    let url = url::Url::parse(&env_of(env, "REDIS_URL")).expect("REDIS_URL parses");
    url.password()
        .expect("REDIS_URL has a password")
        .to_string()
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .expect("URL parses")
        .port()
        .expect("URL has a port")
}

/// Whether `c` answers its own protocol on `addr` within `within`: Redis AUTH+PING,
/// PostgreSQL's reply to a startup message, `GET /ready` == 200 for gateways and the edge.
/// A paused server still completes the TCP handshake (the kernel does), so only an answer
/// counts.
async fn answers(c: Component, addr: SocketAddr, redis_pw: &str, within: Duration) -> bool {
    let probe = async {
        match c {
            Component::Redis => health::redis_ping(addr, Some(redis_pw)).await.is_ok(),
            Component::Postgres | Component::PostgresReplica => {
                health::postgres_accepting(addr, "loadgate", "loadgate")
                    .await
                    .is_ok()
            }
            Component::Region(_) => false,
            Component::Gateway(_) | Component::Edge => http()
                .get(format!("http://{addr}/ready"))
                .timeout(within)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200),
        }
    };
    tokio::time::timeout(within, probe).await.unwrap_or(false)
}

async fn act(h: &StackHandle, c: Component, op: StackOp) -> String {
    let r = h
        .act(c, op)
        .await
        .unwrap_or_else(|e| panic!("{op} {c}: {e}"));
    assert_eq!((r.component, r.op), (c, op));
    eprintln!("{op} {c}: {} ({:?})", r.detail, r.elapsed);
    r.detail
}

/// The registry records `pid` (with its start time) for component `c`.
fn recorded(root: &std::path::Path, c: Component, pid: u32) -> bool {
    let start = child::proc_start(pid).expect("the process runs");
    registry::list(root).iter().any(|(_, rec)| {
        rec.children
            .iter()
            .any(|ch| ch.name == c.registry_name() && ch.pid == pid && ch.start == start)
    })
}

/// Process-backed component `c`: kill → down (pid gone, no answer) → start (new pid, same
/// address, answers, recorded) → pause (no answer within 1 s) → start refused → resume
/// (answers) → stop → start (answers).
async fn cycle_process_component(h: &StackHandle, root: &std::path::Path, c: Component, pw: &str) {
    let addr = h.addr(c).expect("address");
    let pid = h.pid(c).expect("pid");
    assert_eq!(h.state(c), Some(ComponentState::Up), "{c}");
    assert!(
        answers(c, addr, pw, Duration::from_secs(5)).await,
        "{c} answers at first"
    );

    act(h, c, StackOp::Kill).await;
    assert!(pid_gone(pid), "{c}: pid {pid} still runs after kill");
    assert_eq!(h.state(c), Some(ComponentState::Down));
    assert_eq!(h.pid(c), None);
    assert!(
        !answers(c, addr, pw, PAUSED_SILENCE).await,
        "{c} answers after kill"
    );
    // Killing what is down is a no-op.
    assert!(act(h, c, StackOp::Kill).await.contains("already down"));

    act(h, c, StackOp::Start).await;
    let pid2 = h.pid(c).expect("pid after start");
    assert_ne!(pid2, pid);
    assert_eq!(h.addr(c), Some(addr), "{c} keeps its address");
    assert_eq!(h.state(c), Some(ComponentState::Up));
    assert!(
        answers(c, addr, pw, Duration::from_secs(5)).await,
        "{c} answers after start"
    );
    assert!(
        recorded(root, c, pid2),
        "{c}: restarted pid {pid2} not in stack.json"
    );
    // The dead process's record was replaced: `stack status` counts only live processes.
    let status = stack::status_in(root);
    assert!(
        status[0].children.iter().all(|(_, _, alive)| *alive),
        "stale records after restarting {c}: {:?}",
        status[0].children
    );
    // Starting what is up is a no-op.
    assert!(act(h, c, StackOp::Start).await.contains("already up"));

    act(h, c, StackOp::Pause).await;
    assert_eq!(h.state(c), Some(ComponentState::Paused));
    assert!(
        !answers(c, addr, pw, PAUSED_SILENCE).await,
        "{c} answered while paused"
    );
    match h.act(c, StackOp::Start).await {
        Err(e @ ControlError::WrongState { .. }) => {
            assert!(e.to_string().contains("resume"), "{e}")
        }
        other => panic!("start of paused {c}: {other:?}"),
    }
    act(h, c, StackOp::Resume).await;
    assert_eq!(h.state(c), Some(ComponentState::Up));
    assert_eq!(h.pid(c), Some(pid2), "resume keeps the process");
    assert!(
        answers(c, addr, pw, Duration::from_secs(5)).await,
        "{c} answers after resume"
    );

    act(h, c, StackOp::Stop).await;
    assert!(pid_gone(pid2), "{c}: pid {pid2} still runs after stop");
    assert_eq!(h.state(c), Some(ComponentState::Down));
    match h.act(c, StackOp::Resume).await {
        Err(e @ ControlError::WrongState { .. }) => assert!(e.to_string().contains("start"), "{e}"),
        other => panic!("resume of stopped {c}: {other:?}"),
    }
    act(h, c, StackOp::Start).await;
    assert!(
        answers(c, addr, pw, Duration::from_secs(5)).await,
        "{c} answers after stop+start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_backend_every_component_comes_back_on_its_port_and_shutdown_after_pause_and_kill_leaves_nothing(
) {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 2,
        edge: Some(EdgeStrategy::RoundRobin),
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start process stack");
    let h = stack.handle();
    let env = h.env();
    assert_eq!(env, stack.env());
    let pw = redis_password(&env);
    assert_eq!(
        h.components(),
        vec![
            Component::Redis,
            Component::Postgres,
            Component::Gateway(1),
            Component::Gateway(2),
            Component::Edge
        ]
    );
    assert_eq!(h.state(Component::Gateway(3)), None);
    match h.act(Component::Gateway(3), StackOp::Kill).await {
        Err(e @ ControlError::NoSuchComponent { .. }) => {
            assert!(e.to_string().contains("gateway[2]"), "{e}")
        }
        other => panic!("gateway[3]: {other:?}"),
    }
    // The exported URLs name the addresses the handle keeps.
    assert_eq!(
        h.addr(Component::Redis).unwrap().port(),
        port_of(&env_of(&env, "REDIS_URL"))
    );
    assert_eq!(
        h.addr(Component::Edge).unwrap().port(),
        port_of(&env_of(&env, "TARGET_URL"))
    );

    for c in h.components() {
        let t = Instant::now();
        cycle_process_component(&h, root.path(), c, &pw).await;
        eprintln!("{c}: full cycle in {:?}", t.elapsed());
    }
    // Real clients on the exported URLs, and the whole path through the edge.
    assert_eq!(redis_cli(&env_of(&env, "REDIS_URL"), &["PING"]), "PONG");
    assert_eq!(psql(&env_of(&env, "DATABASE_URL"), "SELECT 1"), "1");
    let target = env_of(&env, "TARGET_URL");
    let user = env_of(&env, "USER_KEY");
    assert!(
        eventually(Duration::from_secs(15), || async {
            http()
                .get(format!("{target}/auth/me"))
                .bearer_auth(&user)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "GET /auth/me through the edge after every component was cycled"
    );

    // Shutdown with a paused gateway and postgres and a killed redis.
    act(&h, Component::Gateway(2), StackOp::Pause).await;
    act(&h, Component::Postgres, StackOp::Pause).await;
    act(&h, Component::Redis, StackOp::Kill).await;
    let pids = stack.pids();
    assert_eq!(pids.len(), 4, "gw-1, gw-2, edge, postgres run: {pids:?}");
    let dir = stack.state_dir().expect("state dir");
    let t = Instant::now();
    stack.shutdown().await.expect("shutdown");
    eprintln!("shutdown with paused components: {:?}", t.elapsed());
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "pid {pid} left");
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            descendant_servers().is_empty()
        })
        .await,
        "left processes: {:?}",
        descendant_servers()
    );
    assert!(!dir.exists(), "{} left", dir.display());
    assert!(
        entries(root.path()).is_empty(),
        "{:?}",
        entries(root.path())
    );
    // The handle outlives the stack but does nothing any more.
    match h.act(Component::Redis, StackOp::Start).await {
        Err(ControlError::ShutDown { .. }) => {}
        other => panic!("start after shutdown: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_is_ready_again_after_redis_and_postgres_come_back() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 1,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start");
    let h = stack.handle();
    let env = h.env();
    let target = env_of(&env, "TARGET_URL");
    let user = env_of(&env, "USER_KEY");
    let ready = || async {
        http()
            .get(format!("{target}/ready"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    assert!(ready().await);
    for dep in [Component::Redis, Component::Postgres] {
        for (down, up) in [
            (StackOp::Kill, StackOp::Start),
            (StackOp::Stop, StackOp::Start),
        ] {
            act(&h, dep, down).await;
            assert!(
                eventually(Duration::from_secs(10), || async { !ready().await }).await,
                "gateway still ready with {dep} down"
            );
            act(&h, dep, up).await;
            let t = Instant::now();
            assert!(
                eventually(Duration::from_secs(30), ready).await,
                "gateway /ready not 200 within 30s after {dep} {down} + {up}"
            );
            eprintln!("gateway ready {:?} after {dep} {down} + start", t.elapsed());
        }
        act(&h, dep, StackOp::Restart).await;
        assert!(
            eventually(Duration::from_secs(30), ready).await,
            "gateway /ready not 200 within 30s after {dep} restart"
        );
    }
    // The write path works again (Postgres) and keys resolve (Redis cache, Postgres).
    let id = uuid::Uuid::new_v4().to_string();
    let r = http()
        .post(format!("{target}/v1/notes"))
        .bearer_auth(&user)
        .json(&serde_json::json!({"id": id, "text": "after restarts"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = http()
        .get(format!("{target}/v1/notes/{id}"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stack.shutdown().await.unwrap();
    assert!(entries(root.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stack_with_paused_and_killed_components_leaves_nothing() {
    if skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Process,
        gateways: 1,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start");
    let h = stack.handle();
    act(&h, Component::Redis, StackOp::Pause).await;
    act(&h, Component::Gateway(1), StackOp::Pause).await;
    act(&h, Component::Postgres, StackOp::Kill).await;
    let pids = stack.pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let dir = stack.state_dir().unwrap();
    let t = Instant::now();
    drop(stack);
    // Paused processes get SIGCONT with their stop signal: no grace period sat out.
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "drop took {:?}",
        t.elapsed()
    );
    for pid in pids {
        assert!(
            pid_gone(pid),
            "drop must stop paused pid {pid} synchronously"
        );
    }
    assert!(
        descendant_servers().is_empty(),
        "{:?}",
        descendant_servers()
    );
    assert!(!dir.exists());
    assert_eq!(h.state(Component::Redis), Some(ComponentState::Down));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_keep_their_host_port_across_kill_stop_and_pause() {
    if docker_engine_or_skip().await.is_none() || skip_without_gateway() {
        return;
    }
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::Containers,
        gateways: 1,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("start containers stack");
    assert_eq!(stack.backend(), StackBackend::Containers);
    let h = stack.handle();
    let env = h.env();
    let pw = redis_password(&env);
    let redis_url = env_of(&env, "REDIS_URL");
    let database_url = env_of(&env, "DATABASE_URL");
    let target = env_of(&env, "TARGET_URL");
    assert_eq!(
        h.addr(Component::Redis).unwrap().port(),
        port_of(&redis_url)
    );
    assert_eq!(
        h.addr(Component::Postgres).unwrap().port(),
        port_of(&database_url)
    );
    let real_client_ok = |c: Component| match c {
        Component::Redis => redis_cli(&redis_url, &["PING"]) == "PONG",
        _ => psql(&database_url, "SELECT 1") == "1",
    };
    for c in [Component::Redis, Component::Postgres] {
        let t = Instant::now();
        let addr = h.addr(c).unwrap();
        assert_eq!(h.pid(c), None, "containers have no pid of ours");
        for (down, state) in [
            (StackOp::Kill, ComponentState::Down),
            (StackOp::Stop, ComponentState::Down),
        ] {
            let detail = act(&h, c, down).await;
            assert!(detail.contains(&addr.port().to_string()), "{detail}");
            assert_eq!(h.state(c), Some(state));
            assert!(
                !answers(c, addr, &pw, PAUSED_SILENCE).await,
                "{c} answers after {down}"
            );
            act(&h, c, StackOp::Start).await;
            assert_eq!(h.addr(c), Some(addr));
            assert!(answers(c, addr, &pw, Duration::from_secs(5)).await);
            assert!(
                real_client_ok(c),
                "{c} through the exported URL after {down} + start"
            );
        }
        act(&h, c, StackOp::Pause).await;
        assert_eq!(h.state(c), Some(ComponentState::Paused));
        assert!(
            !answers(c, addr, &pw, PAUSED_SILENCE).await,
            "{c} answered while paused"
        );
        act(&h, c, StackOp::Resume).await;
        assert!(answers(c, addr, &pw, Duration::from_secs(5)).await);
        eprintln!("{c}: container cycle in {:?}", t.elapsed());
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            http()
                .get(format!("{target}/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "gateway not ready again after the containers came back"
    );
    // Shutdown with a paused container and a killed one.
    act(&h, Component::Redis, StackOp::Pause).await;
    act(&h, Component::Postgres, StackOp::Kill).await;
    let id = stack.id().to_string();
    stack.shutdown().await.expect("shutdown");
    assert!(
        docker::containers_of_stack(&id).await.unwrap().is_empty(),
        "containers of {id} left (docker ps -a --filter label=loadgate.stack={id})"
    );
    assert!(
        entries(root.path()).is_empty(),
        "{:?}",
        entries(root.path())
    );
    assert!(
        descendant_servers().is_empty(),
        "{:?}",
        descendant_servers()
    );
}

#[tokio::test]
async fn external_backend_refuses_actions_and_runs_exec_hooks() {
    // Only this test reads TARGET_URL (nextest runs each test in its own process).
    std::env::set_var("TARGET_URL", "http://127.0.0.1:9/");
    let root = state_root();
    let spec = StackSpec {
        backend: StackBackend::External,
        ..StackSpec::default()
    };
    let stack = stack::start(&spec, &options(root.path()))
        .await
        .expect("external stack");
    let h = stack.handle();
    assert!(h.components().is_empty());
    assert_eq!(h.state(Component::Redis), None);
    for op in StackOp::ALL {
        match h.act(Component::Redis, op).await {
            Err(e @ ControlError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("external") && text.contains("exec hook"),
                    "{text}"
                );
            }
            other => panic!("{op} on external: {other:?}"),
        }
    }

    let mut hook = ExecHook::new(
        "echo target=$TARGET_URL backend=$BACKEND extra=$EXTRA; echo oops >&2; exit 3",
        Duration::from_secs(10),
    );
    hook.env.push(("EXTRA".into(), "x1".into()));
    let out = h.exec(&hook).await.expect("exec");
    assert_eq!(out.status, Some(3), "non-zero exit is Ok with its status");
    assert!(!out.success());
    assert_eq!(
        out.stdout_tail,
        "target=http://127.0.0.1:9 backend=external extra=x1\n"
    );
    assert_eq!(out.stderr_tail, "oops\n");

    // The hook's env overrides the stack's.
    hook.command = "printf %s \"$TARGET_URL\"".into();
    hook.env = vec![("TARGET_URL".into(), "http://override".into())];
    let out = h.exec(&hook).await.unwrap();
    assert_eq!(
        (out.status, out.stdout_tail.as_str()),
        (Some(0), "http://override")
    );

    // Only the tail is kept.
    let out = h
        .exec(&ExecHook::new(
            "head -c 10000 /dev/zero | tr '\\0' a; echo END",
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
    assert!(out.stdout_tail.len() <= 4096, "{}", out.stdout_tail.len());
    assert!(out.stdout_tail.ends_with("aaaEND\n"));
    stack.shutdown().await.unwrap();
    assert!(entries(root.path()).is_empty());
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    std::env::set_var("TARGET_URL", "http://127.0.0.1:9/");
    let root = state_root();
    let stack = stack::start(
        &StackSpec {
            backend: StackBackend::External,
            ..StackSpec::default()
        },
        &options(root.path()),
    )
    .await
    .expect("external stack");
    let h = stack.handle();
    let pids = tempfile::tempdir().unwrap();
    let dir = pids.path().display().to_string();
    let hook = ExecHook::new(
        format!("echo $$ > {dir}/sh; sleep 30 & echo $! > {dir}/sleep; wait"),
        Duration::from_secs(1),
    );
    let t = Instant::now();
    match h.exec(&hook).await {
        Err(e @ ControlError::ExecTimeout { .. }) => {
            assert!(e.to_string().contains("timeout"), "{e}")
        }
        other => panic!("sleep 30 with a 1s timeout: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    for name in ["sh", "sleep"] {
        let pid: u32 = std::fs::read_to_string(pids.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_gone(pid, Duration::from_secs(2)),
            "{name} (pid {pid}) outlived the timeout"
        );
    }
    // A hook's background job does not outlive a hook that exits normally either.
    let out = h
        .exec(&ExecHook::new(
            format!("sleep 30 & echo $! > {dir}/bg; echo started"),
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
    assert_eq!(out.status, Some(0));
    let bg: u32 = std::fs::read_to_string(pids.path().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_gone(bg, Duration::from_secs(2)),
        "background job {bg} left"
    );
    stack.shutdown().await.unwrap();
}

#[test]
fn components_and_ops_parse_and_display() {
    let cases = [
        ("redis", Component::Redis, "redis"),
        ("postgres", Component::Postgres, "postgres"),
        (
            "postgres-replica",
            Component::PostgresReplica,
            "postgres-replica",
        ),
        ("gateway[1]", Component::Gateway(1), "gateway[1]"),
        ("gw-12", Component::Gateway(12), "gateway[12]"),
        ("edge", Component::Edge, "edge"),
    ];
    for (text, want, shown) in cases {
        let c: Component = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c, want);
        assert_eq!(c.to_string(), shown);
        assert_eq!(c.to_string().parse::<Component>().unwrap(), c, "round trip");
    }
    assert_eq!(Component::Gateway(2).registry_name(), "gw-2");
    for bad in [
        "gateway[0]",
        "gw-0",
        "gw-x",
        "gateway[]",
        "gateway[-1]",
        "gw-",
    ] {
        let e = bad.parse::<Component>().unwrap_err().to_string();
        assert!(e.contains(bad) && e.contains("gateway[1]"), "{bad}: {e}");
    }
    for bad in ["Redis", "pg", "", "gateway", "gateway[1"] {
        let e = bad.parse::<Component>().unwrap_err().to_string();
        assert!(
            e.contains("redis, postgres, postgres-replica, gateway[N] or gw-N")
                && e.contains("edge"),
            "{bad}: {e}"
        );
    }
    let names = ["kill", "stop", "start", "restart", "pause", "resume"];
    assert_eq!(StackOp::ALL.len(), names.len());
    for (op, name) in StackOp::ALL.into_iter().zip(names) {
        assert_eq!(op.to_string(), name);
        assert_eq!(name.parse::<StackOp>().unwrap(), op);
    }
    for bad in ["KILL", "unpause", ""] {
        let e = bad.parse::<StackOp>().unwrap_err().to_string();
        assert!(
            e.contains("kill, stop, start, restart, pause, resume"),
            "{bad}: {e}"
        );
    }
    // Serde uses the same text (plans name components and operations this way).
    assert_eq!(
        serde_json::to_string(&(Component::Gateway(3), StackOp::Restart)).unwrap(),
        r#"["gateway[3]","restart"]"#
    );
    let (c, op): (Component, StackOp) = serde_json::from_str(r#"["gw-2","pause"]"#).unwrap();
    assert_eq!((c, op), (Component::Gateway(2), StackOp::Pause));
    assert!(serde_json::from_str::<Component>(r#""db""#).is_err());
    assert_eq!(ComponentState::Paused.to_string(), "paused");
}
