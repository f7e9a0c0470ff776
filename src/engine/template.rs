//! Request templating (`{{feeder.column}}`, `{{uuid}}`, `{{seq}}`, ...).
use thiserror::Error;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub source: String,
}

#[derive(Debug, Error, PartialEq)]
pub enum TemplateError {
    #[error("unclosed '{{{{' at byte {0}: add the closing '}}}}'")]
    Unclosed(usize),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        Ok(Template { source: s.to_string() })
    }
}
