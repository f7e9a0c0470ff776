//! The load engine: pacers, executors, HTTP clients, request templating and feeders.
pub mod template;
