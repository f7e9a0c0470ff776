//! k6 threshold grammar.
use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdExpr {
    pub source: String,
}

#[derive(Debug, Error, PartialEq)]
pub enum ThresholdError {
    #[error("invalid threshold '{0}'")]
    Invalid(String),
}

impl ThresholdExpr {
    pub fn parse(s: &str) -> Result<ThresholdExpr, ThresholdError> {
        Ok(ThresholdExpr { source: s.to_string() })
    }
}
