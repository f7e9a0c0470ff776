//! Shutdown and cleanup of the slots:
//! [`RunningStack::shutdown`](crate::stack::RunningStack::shutdown) (async, waits for
//! in-flight operations) and `Drop` (synchronous, best effort). Both close the stack first,
//! then stop whatever each slot holds, paused ones thawed first.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{ComponentState, ServiceSlot, Shared, Target};
use crate::fault::proxy::Proxy;
use crate::stack::child::{self, ChildProc};
use crate::stack::containers::ContainerServices;
use crate::stack::docker::{self, ContainerOp};
use crate::stack::StackError;
use nix::sys::signal::Signal;

/// How long shutdown waits for in-flight operations to let go of their component.
const SHUTDOWN_OP_WAIT: Duration = Duration::from_secs(15);

/// What shutdown takes out of the slots.
struct Taken {
    edge: Option<ChildProc>,
    gateways: Vec<ChildProc>,
    redis: Option<ChildProc>,
    postgres: Option<ChildProc>,
    postgres_replica: Option<ChildProc>,
    containers: Option<ContainerServices>,
    paused_containers: Vec<String>,
    proxies: Vec<Proxy>,
}

impl Taken {
    /// Continues every paused process first: a gateway draining on SIGTERM waits for its
    /// in-flight Redis / PostgreSQL calls, which a paused service would hold for the whole
    /// grace period. Then the edge and gateways, then the services (blocking: stop signal,
    /// grace, SIGKILL; ChildProc::stop also sends SIGCONT).
    fn stop_processes(&mut self) {
        let all = self
            .edge
            .iter()
            .chain(self.gateways.iter())
            .chain(self.redis.iter())
            .chain(self.postgres.iter())
            .chain(self.postgres_replica.iter());
        for p in all {
            // SIGCONT to a running process does nothing.
            child::signal_group(p.pid() as i32, Signal::SIGCONT);
        }
        if let Some(mut e) = self.edge.take() {
            e.stop(Duration::from_secs(3));
        }
        // Signal all first so they drain in parallel, then wait for each.
        for g in &self.gateways {
            child::signal_group(g.pid() as i32, Signal::SIGTERM);
            child::signal_group(g.pid() as i32, Signal::SIGCONT);
        }
        for mut g in std::mem::take(&mut self.gateways) {
            g.stop(Duration::from_secs(5));
        }
        // No client left: the fault proxies go (their threads are joined).
        for p in std::mem::take(&mut self.proxies) {
            p.shutdown();
        }
        if let Some(mut r) = self.redis.take() {
            r.stop(Duration::from_secs(3));
        }
        if let Some(mut p) = self.postgres.take() {
            p.stop(Duration::from_secs(5));
        }
        if let Some(mut p) = self.postgres_replica.take() {
            p.stop(Duration::from_secs(5));
        }
    }
}

impl Shared {
    /// Marks the stack closed and ends in-flight readiness waits.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    /// Every component's operation lock.
    fn op_locks(&self) -> Vec<Arc<tokio::sync::Mutex<()>>> {
        let st = self.state();
        let mut locks: Vec<_> = st.edge.iter().map(|e| e.op.clone()).collect();
        locks.extend(st.gateways.iter().map(|g| g.op.clone()));
        for s in [&st.redis, &st.postgres, &st.postgres_replica]
            .into_iter()
            .flatten()
        {
            locks.push(Target::from(s.clone()).op_lock());
        }
        locks
    }

    /// Empties every slot (after [`Shared::close`]).
    fn take_all(&self) -> Taken {
        let mut st = self.state();
        let proc_of = |s: &Option<ServiceSlot>| match s {
            Some(ServiceSlot::Proc(p)) => p.take(),
            _ => None,
        };
        let paused_containers = [&st.redis, &st.postgres, &st.postgres_replica]
            .into_iter()
            .flatten()
            .filter_map(|s| match s {
                ServiceSlot::Container(c) if c.state() == ComponentState::Paused => {
                    c.set_state(ComponentState::Down);
                    Some(c.id.clone())
                }
                _ => None,
            })
            .collect();
        Taken {
            edge: st.edge.as_ref().and_then(|e| e.take()),
            gateways: st.gateways.iter().filter_map(|g| g.take()).collect(),
            redis: proc_of(&st.redis),
            postgres: proc_of(&st.postgres),
            postgres_replica: proc_of(&st.postgres_replica),
            containers: st.containers.take(),
            paused_containers,
            proxies: std::mem::take(&mut st.proxies)
                .into_iter()
                .map(|(_, p)| p)
                .collect(),
        }
    }

    /// Orderly async stop: close, wait (bounded) for in-flight operations, stop processes
    /// on a blocking thread, unpause and remove containers, delete the entry.
    pub(in crate::stack) async fn shutdown(&self) -> Result<(), StackError> {
        self.close();
        let mut guards = Vec::new();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_OP_WAIT;
        for l in self.op_locks() {
            match tokio::time::timeout_at(deadline, l.lock_owned()).await {
                Ok(g) => guards.push(g),
                Err(_) => {
                    tracing::warn!(
                        "a stack control operation did not end within {SHUTDOWN_OP_WAIT:?} of shutdown; stopping the stack anyway"
                    );
                    break;
                }
            }
        }
        let mut taken = self.take_all();
        // Thawed before the gateways stop, for the same reason as in stop_processes.
        for id in std::mem::take(&mut taken.paused_containers) {
            let _ = docker::container_op(&id, ContainerOp::Unpause).await;
        }
        let containers = tokio::task::spawn_blocking(move || {
            taken.stop_processes();
            taken.containers.take()
        })
        .await
        .map_err(|e| StackError::Io {
            what: "stopping the stack".into(),
            source: std::io::Error::other(e),
        })?;
        let mut result = Ok(());
        if let Some(c) = containers {
            result = c.remove().await;
        }
        self.entry.remove();
        drop(guards);
        result
    }

    /// Synchronous best-effort stop (Drop, also on panic unwind). In-flight operations are
    /// not waited for: their readiness waits end at their next poll, and a process they hold
    /// outside a slot is being killed or stopped by them (and is stopped by ChildProc's Drop
    /// in any case).
    pub(in crate::stack) fn cleanup_sync(&self) {
        self.close();
        let mut taken = self.take_all();
        docker::unpause_blocking(std::mem::take(&mut taken.paused_containers));
        taken.stop_processes();
        if let Some(c) = taken.containers.take() {
            c.remove_blocking();
        }
        self.entry.remove();
    }
}
