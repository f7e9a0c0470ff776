//! Per-worker recorder (owned by one worker, no locks on the hot path) and the run-wide
//! aggregator it flushes into once per second.
