//! The control handle's errors, in a file of their own: every operation of the handle
//! (component ops, exec hooks, network faults, backup / restore, failover) reports through
//! this one enum, and each message names the component and what to do.
use std::time::Duration;

use super::ComponentState;
use crate::fault::proxy::ProxyError;
use crate::spec::stack::{Component, StackOp};

/// Errors of the control handle; each names the component and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot {op} {component}: the {backend} backend runs no component loadgate controls; {hint}")]
    Unsupported {
        component: Component,
        op: StackOp,
        backend: &'static str,
        hint: String,
    },
    #[error("cannot act on {component}: this stack has no such component (it has: {available}); check the component name and the stack's `gateways` / `edge` settings")]
    NoSuchComponent {
        component: Component,
        available: String,
    },
    #[error("cannot {op} {component}: it is {state}; {hint}")]
    WrongState {
        component: Component,
        op: StackOp,
        state: ComponentState,
        hint: &'static str,
    },
    #[error("{op} {component} failed: {reason}")]
    Failed {
        component: Component,
        op: StackOp,
        reason: String,
    },
    #[error("{component} did not become ready: {reason}")]
    NotReady {
        component: Component,
        reason: String,
    },
    #[error("cannot {op} {component}: the stack was shut down (use a handle of a running stack)")]
    ShutDown { component: Component, op: StackOp },
    #[error("exec hook `{command}`: cannot start `sh -c`: {source} (check that /bin/sh exists and is executable)")]
    ExecSpawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec hook `{command}` did not finish within {timeout:?}; its process group was killed (SIGKILL). Raise the hook's timeout or make the command finish sooner")]
    ExecTimeout { command: String, timeout: Duration },
    #[error("cannot put a network fault on {component}: the stack runs no fault proxy in front of it (proxies: {available}); network faults act on redis and postgres of a reference stack started with its fault proxy (a plan with a `toxic` fault gets it)")]
    NoProxy {
        component: Component,
        available: String,
    },
    #[error("{what} of {component} failed: {reason}")]
    DataOp {
        component: Component,
        /// `backup` or `restore`.
        what: &'static str,
        reason: String,
    },
    #[error("failover of {component} failed: {reason}")]
    Failover {
        component: Component,
        reason: String,
    },
    #[error("network fault on {component}: {source}")]
    Proxy {
        component: Component,
        #[source]
        source: ProxyError,
    },
}
