//! Checks: k6-style thresholds over metrics, and per-response checks.
pub mod response;
pub mod threshold;
