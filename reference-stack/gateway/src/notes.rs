//! Durable notes, for failover drills that count lost acknowledged writes (RPO).
//!
//! `POST /v1/notes` `{"id": "<uuid>", "text": "..."}` answers 201 `{"id","text"}` only after
//! the Postgres commit (an upsert: retrying the same id is safe); with the test knob
//! `GATEWAY_UNSAFE_ACK_BEFORE_COMMIT=true`, before it (the commit follows 2 s later, and a
//! Postgres kill in between loses the acknowledged note). `GET /v1/notes/{id}` answers
//! 200 `{"id","text"}` or 404.
//!
//! A note belongs to the key that created it: another user key gets 404 reading it (as for a
//! missing note) and 409 writing its id (nothing is overwritten); admin keys read every note.

use crate::auth::Caller;
use crate::error::JsonBody;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use uuid::Uuid;

/// With `GATEWAY_UNSAFE_ACK_BEFORE_COMMIT`: how long after its 201 a note is committed.
const UNSAFE_COMMIT_DELAY: std::time::Duration = std::time::Duration::from_secs(2);
/// ... and how long that one commit attempt may take before the note is dropped.
const UNSAFE_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    pub id: Uuid,
    /// A string; numbers and booleans are accepted and stored as their JSON text.
    pub text: serde_json::Value,
}

pub async fn create(
    caller: Caller,
    State(st): State<AppState>,
    JsonBody(body): JsonBody<NewNote>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let n = body;
    let text = match n.text {
        serde_json::Value::String(s) => s,
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => v.to_string(),
        other => {
            return Err(ApiError::BadRequest(format!(
                "field `text` must be a string, got {other}"
            )))
        }
    };
    crate::error::reject_nul("text", &text)?;
    if st.cfg.unsafe_ack_before_commit {
        // The test knob: acknowledge now, commit later; a Postgres kill in between loses
        // the note although the client was told 201.
        let (db, id, key, t) = (st.db.clone(), n.id, caller.key_id.clone(), text.clone());
        tokio::spawn(async move {
            tokio::time::sleep(UNSAFE_COMMIT_DELAY).await;
            // One short attempt, no waiting for Postgres to come back: that is the loss.
            let commit = crate::db::upsert_note(&db, id, &key, &t);
            match tokio::time::timeout(UNSAFE_COMMIT_TIMEOUT, commit).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("unsafe ack: note {id} acknowledged but not stored: {e}")
                }
                Err(_) => tracing::warn!(
                    "unsafe ack: note {id} acknowledged but not stored: no commit within {UNSAFE_COMMIT_TIMEOUT:?}"
                ),
            }
        });
        return Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"id": n.id, "text": text})),
        ));
    }
    if !crate::db::upsert_note(&st.db, n.id, &caller.key_id, &text).await? {
        return Err(ApiError::Conflict(format!(
            "note {} belongs to another API key: use a new id",
            n.id
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"id": n.id, "text": text})),
    ))
}

pub async fn get_note(
    caller: Caller,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("note id {id:?} is not a UUID")))?;
    match crate::db::get_note(&st.db, id, caller.owner_filter()).await? {
        Some(text) => Ok(Json(serde_json::json!({"id": id, "text": text}))),
        None => Err(ApiError::NotFound("note")),
    }
}
