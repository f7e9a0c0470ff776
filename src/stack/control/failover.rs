//! The PostgreSQL failover ([`StackHandle::failover`]): kill -9 the primary, promote its
//! streaming replica (`SELECT pg_promote(true, 60)`, which returns once the replica left
//! recovery and accepts writes), then repoint the gateways at it.
//!
//! How the gateways are repointed: the stack's fault proxy in front of postgres (started
//! whenever a plan has a failover) gets the promoted replica as its upstream
//! ([`ProxyHandle::set_upstream`](crate::fault::proxy::ProxyHandle::set_upstream)). That is
//! what production does with a virtual IP, a DNS switch or a PgBouncer `RECONNECT`: the
//! clients keep their one database address, the connections they held to the dead primary
//! are gone (reset), and their pool opens new ones, which now reach the new primary. It is
//! also the honest measurement: the outage users see is detection + promotion + the
//! gateways' own reconnect (deadpool drops a closed connection on its next checkout), with
//! no gateway restart, which would add its own outage and hide whether the gateway
//! recovers by itself. Restarting the gateways with a new `DATABASE_URL` was the other way;
//! it measures a deploy, not a failover.
//!
//! Works on both backends (the promotion is SQL, the replica's address is the one the stack
//! reaches it at). Once failed over, `postgres` names the old primary (down) and
//! `postgres-replica` the new primary; a second failover is refused, since the promoted
//! server has no replica of its own. `DATABASE_URL` in the stack's environment (exec hooks)
//! names the new primary afterwards.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{ControlError, StackHandle};
use crate::spec::{Component, StackOp};

/// How long the promotion may take (pg_promote's own wait).
const PROMOTE_WAIT_S: u32 = 60;

/// How long connecting to the replica for the promotion may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `pg_promote()` could not be run on the replica (rendered into
/// [`ControlError::Failover`]'s reason).
#[derive(Debug, thiserror::Error)]
enum PromoteError {
    #[error("connecting to the replica timed out after {} s (is postgres-replica up and reachable at the stack's address?)", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout,
    #[error("connecting to the replica: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("pg_promote(): {0}")]
    Query(#[source] tokio_postgres::Error),
    #[error("pg_promote() answer: {0}")]
    Answer(#[source] tokio_postgres::Error),
}

/// What a failover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// From the call to the repoint (kill, promotion and switch).
    pub elapsed: Duration,
    /// The new primary, as the stack reaches it.
    pub new_primary: SocketAddr,
    /// e.g. `killed postgres (...) in 12 ms; promoted postgres-replica on 127.0.0.1:4321 in
    /// 480 ms; proxy 127.0.0.1:555 -> 127.0.0.1:4321`.
    pub detail: String,
}

impl StackHandle {
    /// Fails PostgreSQL over to its replica; see the module doc. `c` must be `postgres`.
    pub async fn failover(&self, c: Component) -> Result<Promotion, ControlError> {
        let started = Instant::now();
        let fail = |reason: String| ControlError::Failover {
            component: c,
            reason,
        };
        if c != Component::Postgres {
            return Err(fail(format!(
                "only postgres fails over (to its replica); {c} has none"
            )));
        }
        self.shared.check_open(c, StackOp::Kill)?;
        let (replica_addr, already) = {
            let st = self.shared.state();
            (st.postgres_replica.is_some(), st.failed_over)
        };
        if !replica_addr {
            return Err(fail(
                "the stack runs no replica: start it with `stack.reference.postgres: { replica: async }` (or `sync`)".into(),
            ));
        }
        if already {
            return Err(fail(
                "already failed over: the promoted replica has no replica of its own".into(),
            ));
        }
        let replica = self
            .shared
            .addr_of(Component::PostgresReplica)
            .ok_or_else(|| fail("the replica has no address".into()))?;
        let proxy = self.shared.proxy(Component::Postgres).ok_or_else(|| {
            fail("the stack runs no fault proxy in front of postgres to repoint the gateways through (a plan with a failover fault gets one; or set `stack.reference.fault_proxy: true`)".into())
        })?;
        let url = self
            .shared
            .env_var("DATABASE_URL")
            .ok_or_else(|| fail("the stack has no DATABASE_URL yet".into()))?;
        let mut replica_url =
            url::Url::parse(&url).map_err(|e| fail(format!("DATABASE_URL: {e}")))?;
        replica_url
            .set_host(Some(&replica.ip().to_string()))
            .and_then(|_| {
                replica_url
                    .set_port(Some(replica.port()))
                    .map_err(|_| url::ParseError::InvalidPort)
            })
            .map_err(|e| fail(format!("DATABASE_URL: {e}")))?;

        let kill = self.act(Component::Postgres, StackOp::Kill).await?;
        let t_promote = Instant::now();
        let cancel = self.shared.cancel.clone();
        let promoted = tokio::select! {
            r = promote(replica_url.as_str()) => r.map_err(|e| fail(e.to_string()))?,
            _ = cancel.cancelled() => return Err(ControlError::ShutDown { component: c, op: StackOp::Kill }),
        };
        if !promoted {
            return Err(fail(format!(
                "pg_promote() on {replica} returned false: not promoted within {PROMOTE_WAIT_S} s"
            )));
        }
        let promote_ms = t_promote.elapsed().as_millis();
        let old = proxy.upstream();
        proxy.set_upstream(replica);
        {
            let mut st = self.shared.state();
            st.failed_over = true;
            for (k, v) in st.env.iter_mut() {
                if k == "DATABASE_URL" {
                    *v = replica_url.to_string();
                }
            }
        }
        let detail = format!(
            "killed postgres ({}) in {} ms; promoted postgres-replica on {replica} in {promote_ms} ms; proxy {} now forwards to {replica} (was {old})",
            kill.detail,
            kill.elapsed.as_millis(),
            proxy.listen_addr(),
        );
        tracing::info!(%detail, "postgres failed over");
        Ok(Promotion {
            elapsed: started.elapsed(),
            new_primary: replica,
            detail,
        })
    }
}

/// `SELECT pg_promote(true, 60)` on the replica: Ok(true) once promoted.
async fn promote(url: &str) -> Result<bool, PromoteError> {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| PromoteError::ConnectTimeout)?
        .map_err(PromoteError::Connect)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "promotion connection to the replica ended with an error");
        }
    });
    let sql = format!("SELECT pg_promote(true, {PROMOTE_WAIT_S})");
    let r = client
        .query_one(sql.as_str(), &[])
        .await
        .map_err(PromoteError::Query)
        .and_then(|row| row.try_get::<_, bool>(0).map_err(PromoteError::Answer));
    drop(client);
    if let Err(e) = driver.await {
        tracing::warn!(error = %e, "promotion connection task failed");
    }
    r
}
