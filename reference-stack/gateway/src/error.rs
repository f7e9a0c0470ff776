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
    #[error("rate limit exceeded for this key")]
    RateLimited { retry_after_secs: u64 },
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
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
        if let ApiError::InjectedFault { version } = self {
            resp.headers_mut()
                .insert("x-model-version", HeaderValue::from_static(version));
        }
        resp
    }
}

/// `Json<T>` whose rejection is a 400 `{"error": ...}` naming the problem.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
