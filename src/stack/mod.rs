//! The reference stack's backends.
