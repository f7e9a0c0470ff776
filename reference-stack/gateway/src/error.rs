//! The API error type: every handler failure maps to one status code and a JSON body
//! `{"error": "..."}`; refusals carry `Retry-After`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key: send `Authorization: Bearer <key>` or `x-api-key`")]
    Unauthorized,
    #[error("admin role required")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("request body too large: the limit is {limit} bytes (GATEWAY_MAX_BODY_BYTES)")]
    PayloadTooLarge { limit: usize },
    #[error("rate limit exceeded for this key")]
    RateLimited { retry_after_secs: u64 },
    #[error("cost budget exceeded: model {version} is throttled (GATEWAY_BUDGET_MODE=throttle); retry later or use the cheaper model")]
    BudgetThrottled {
        version: &'static str,
        retry_after_secs: u64,
    },
    #[error("overloaded ({reason}); retry later")]
    Shed {
        reason: &'static str,
        status: StatusCode,
        retry_after_secs: u64,
    },
    #[error("{component} unavailable: {detail}")]
    Unavailable {
        component: &'static str,
        detail: String,
    },
    #[error("injected fault for model version {version}")]
    InjectedFault { version: &'static str },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn redis(e: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            component: "redis",
            detail: e.to_string(),
        }
    }
    pub fn postgres(e: impl std::fmt::Display) -> Self {
        ApiError::Unavailable {
            component: "postgres",
            detail: e.to_string(),
        }
    }
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BudgetThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Shed { status, .. } => *status,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InjectedFault { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::redis(e)
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::postgres(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "request failed");
        }
        let mut resp =
            (status, Json(serde_json::json!({"error": self.to_string()}))).into_response();
        let retry = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::BudgetThrottled {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Shed {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable { .. } => Some(1),
            _ => None,
        };
        if let Some(s) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let ApiError::InjectedFault { version } | ApiError::BudgetThrottled { version, .. } =
            self
        {
            resp.headers_mut()
                .insert("x-model-version", HeaderValue::from_static(version));
        }
        resp
    }
}

/// `Json<T>` whose rejection is a 400 `{"error": ...}` naming the problem, or a 413 when the
/// body is longer than `GATEWAY_MAX_BODY_BYTES` (a chunked body has no Content-Length for
/// [`crate::body_limit`] to refuse early; axum's `DefaultBodyLimit` stops reading it here).
pub struct JsonBody<T>(pub T);

impl<T> axum::extract::FromRequest<crate::AppState> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge {
                    limit: state.cfg.max_body_bytes,
                })
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// PostgreSQL `text` and `jsonb` cannot hold U+0000: a field carrying one is the client's
/// mistake (400 naming the field), not a database outage (503), and must never reach a batched
/// insert where it would fail every other row of the batch.
pub fn reject_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\u{0}') {
        return Err(ApiError::BadRequest(format!(
            "field `{field}` contains a NUL character (U+0000), which cannot be stored: remove it"
        )));
    }
    Ok(())
}

/// [`reject_nul`] over every key and string value of a JSON document; `field` names the root.
pub fn reject_nul_json(field: &str, v: &serde_json::Value) -> Result<(), ApiError> {
    match v {
        serde_json::Value::String(s) => reject_nul(field, s),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| reject_nul_json(&format!("{field}[{i}]"), x)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            let path = format!("{field}.{k}");
            reject_nul(&path, k)?;
            reject_nul_json(&path, x)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_refused_with_the_field_named() {
        assert!(reject_nul("text", "fine").is_ok());
        let e = reject_nul("text", "a\u{0}b").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("`text`"), "{e}");
        let doc = serde_json::json!({"kind": "x", "deep": [1, {"k\u{0}": "v"}]});
        let e = reject_nul_json("body", &doc).unwrap_err().to_string();
        assert!(e.contains("body.deep[1].k"), "{e}");
        assert!(reject_nul_json("body", &serde_json::json!({"a": ["b", 1, null]})).is_ok());
    }
}
