//! The plan format.
pub mod tree;
pub mod units;
