//! External backend: a stack someone else runs, described by environment variables.
//!
//! `TARGET_URL` is required; `REDIS_URL`, `DATABASE_URL`, `ADMIN_KEY`, `USER_KEY` and
//! `GATEWAY_URLS` (default: TARGET_URL) are passed through when set. Nothing is started or
//! stopped.

use super::StackError;

/// The URLs and keys read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub target_url: String,
    pub gateway_urls: String,
    pub optional: Vec<(String, String)>,
}

/// Optional variables passed through when set.
pub const OPTIONAL: [&str; 4] = ["REDIS_URL", "DATABASE_URL", "ADMIN_KEY", "USER_KEY"];

/// Reads the process environment.
pub fn from_env() -> Result<External, StackError> {
    from_lookup(|k| std::env::var(k).ok())
}

/// Reads variables through `get` (testable without touching the process environment).
pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<External, StackError> {
    let target_url = get("TARGET_URL").filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        StackError::External("TARGET_URL is not set; export the base URL of the service under test (e.g. TARGET_URL=https://staging.example.internal)".into())
    })?;
    let parsed = url::Url::parse(&target_url).map_err(|e| {
        StackError::External(format!("TARGET_URL `{target_url}` is not a URL: {e}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(StackError::External(format!(
            "TARGET_URL `{target_url}` must be http:// or https://"
        )));
    }
    let target_url = target_url.trim_end_matches('/').to_string();
    let gateway_urls = get("GATEWAY_URLS")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| target_url.clone());
    let optional = OPTIONAL
        .iter()
        .filter_map(|k| get(k).filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
        .collect();
    Ok(External {
        target_url,
        gateway_urls,
        optional,
    })
}

impl External {
    /// TARGET_URL, GATEWAY_URLS, then whichever optional variables were set.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("TARGET_URL".to_string(), self.target_url.clone()),
            ("GATEWAY_URLS".to_string(), self.gateway_urls.clone()),
        ];
        env.extend(self.optional.iter().cloned());
        env
    }
}
