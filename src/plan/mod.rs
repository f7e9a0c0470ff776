//! The plan format.
