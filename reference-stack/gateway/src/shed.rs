//! Load shedding: refuse work early instead of queueing it without bound.
//!
//! - in-flight: more than `GATEWAY_INFLIGHT_LIMIT` concurrent `/v1/*` requests on this
//!   instance → 503 with `Retry-After: 1` (reason `inflight`);
//! - queue depth: `POST /v1/jobs` with the Redis queue at `GATEWAY_QUEUE_LIMIT` → 429 with
//!   `Retry-After: 2` (reason `queue_full`, checked in [`crate::jobs`]);
//! - rate: a key past `GATEWAY_RATE_LIMIT_PER_SEC` on `/v1/chat` → 429 with `Retry-After: 1`
//!   (reason `rate_limit`, checked in [`crate::chat`]).
//!
//! Every refusal is counted in `gateway_shed_requests_total{reason}`.

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;

/// Decrements the in-flight counter when the request ends (also on cancellation).
struct Slot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn inflight_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let now = st.v1_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    let _slot = Slot(&st.v1_in_flight);
    if now > st.cfg.inflight_limit {
        st.metrics.shed("inflight");
        return ApiError::Shed {
            reason: "inflight",
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after_secs: 1,
        }
        .into_response();
    }
    next.run(req).await
}
