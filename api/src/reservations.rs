//! Transfer ids name one transfer for ever (table `transfer_ids`).
//!
//! The saga's steps are identified by the debit event, so a reused `transfer_id` can no longer
//! swallow another transfer's credit; but a client-chosen id must still mean one transfer only,
//! and only here is the whole id space visible (two transfers with one id may start on different
//! source partitions, whose processors never meet). So the gateway claims the id before the debit
//! is sent. The claim is never freed, not even when the debit is refused: the same request may
//! retry with it (and gets the command it was first sent with, so the processor dedupes it),
//! any other request with the id is refused with 409 `transfer_id_reused`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Principal;

/// The transfer a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferRequest {
    pub transfer_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
}

/// What a claim of a transfer id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The id is this request's: send (or re-send) this command.
    Claimed {
        command_id: Uuid,
        first_attempt_at: DateTime<Utc>,
    },
    /// Another request holds the id.
    Reused,
}

/// Claims `request.transfer_id` for `principal`, to be sent as `command_id` first attempted at
/// `first_attempt_at` unless the same request claimed it before.
pub async fn reserve(
    pool: &PgPool,
    principal: &Principal,
    request: TransferRequest,
    command_id: Uuid,
    first_attempt_at: DateTime<Utc>,
) -> Result<Reservation, sqlx::Error> {
    let role = principal.role.as_str();
    let inserted: Option<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO transfer_ids (transfer_id, principal_sub, principal_role, from_account_id, \
           to_account_id, amount, command_id, first_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (transfer_id) DO NOTHING \
         RETURNING command_id, first_attempt_at",
    )
    .bind(request.transfer_id)
    .bind(&principal.sub)
    .bind(role)
    .bind(request.from_account_id)
    .bind(request.to_account_id)
    .bind(request.amount)
    .bind(command_id)
    .bind(first_attempt_at)
    .fetch_optional(pool)
    .await?;
    if let Some((command_id, first_attempt_at)) = inserted {
        return Ok(Reservation::Claimed {
            command_id,
            first_attempt_at,
        });
    }
    let held: Option<Held> = sqlx::query_as(
        "SELECT principal_sub, principal_role, from_account_id, to_account_id, amount, \
           command_id, first_attempt_at \
         FROM transfer_ids WHERE transfer_id = $1",
    )
    .bind(request.transfer_id)
    .fetch_optional(pool)
    .await?;
    Ok(match held {
        Some(held)
            if held.principal_sub == principal.sub
                && held.principal_role == role
                && held.from_account_id == request.from_account_id
                && held.to_account_id == request.to_account_id
                && held.amount == request.amount =>
        {
            Reservation::Claimed {
                command_id: held.command_id,
                first_attempt_at: held.first_attempt_at,
            }
        }
        _ => Reservation::Reused,
    })
}

/// A claimed transfer id, as stored.
#[derive(Debug, sqlx::FromRow)]
struct Held {
    principal_sub: String,
    principal_role: String,
    from_account_id: Uuid,
    to_account_id: Uuid,
    amount: i64,
    command_id: Uuid,
    first_attempt_at: DateTime<Utc>,
}
