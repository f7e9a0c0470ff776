//! Faults loadgate injects itself, beside the ones the stack control handle performs on whole
//! processes (kill, stop, pause): the TCP fault [`proxy`] that sits between the reference
//! stack's gateways and a dependency (Redis, PostgreSQL) and applies toxiproxy's toxics to
//! live connections, so a plan can slow, throttle, cut or reset the network to a dependency
//! while load runs, without a toxiproxy binary or its HTTP API.
pub mod proxy;
