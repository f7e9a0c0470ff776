//! Command line.
use std::ffi::OsString;
use std::process::ExitCode;

pub const EXIT_PASS: u8 = 0;
pub const EXIT_HARNESS: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_CHECK_FAILED: u8 = 99;

pub fn run(_args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(EXIT_PASS))
}
