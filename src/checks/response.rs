//! Response checks.
use thiserror::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseCheck {
    pub source: String,
}

#[derive(Debug, Error, PartialEq)]
pub enum ResponseCheckError {
    #[error("invalid check '{0}'")]
    Invalid(String),
}

impl ResponseCheck {
    pub fn parse(s: &str) -> Result<ResponseCheck, ResponseCheckError> {
        Ok(ResponseCheck {
            source: s.to_string(),
        })
    }
}
