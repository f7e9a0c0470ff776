//! Durable notes, for failover drills that count lost acknowledged writes (RPO).
//!
//! `POST /v1/notes` `{"id": "<uuid>", "text": "..."}` answers 201 `{"id","text"}` only after
//! the Postgres commit (an upsert: retrying the same id is safe). `GET /v1/notes/{id}` answers
//! 200 `{"id","text"}` or 404.

use crate::auth::Caller;
use crate::error::JsonBody;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    pub id: Uuid,
    pub text: String,
}

pub async fn create(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<NewNote>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let n = body;
    crate::db::upsert_note(&st.db, n.id, &caller.key_id, &n.text).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": n.id, "text": n.text})),
    ))
}

pub async fn get_note(
    _: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("note id {id:?} is not a UUID")))?;
    match crate::db::get_note(&st.db, id).await? {
        Some(text) => Ok(Json(serde_json::json!({"id": id, "text": text}))),
        None => Err(ApiError::NotFound("note")),
    }
}
