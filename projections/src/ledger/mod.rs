//! The `ledger` projection: `accounts`, `account_transactions` and `transfers`.
//!
//! - [`rows`]: the row types folded in memory;
//! - [`fold`]: the pure fold of a batch, with the model checks that poison a partition;
//! - [`events`]: what each event means for the rows (line, transfer leg, status);
//! - [`write`]: loading the touched accounts and the set-based writes.
//!
//! [`project`] runs the three inside the projector's transaction.

pub mod events;
pub mod fold;
pub mod rows;
pub mod write;

#[cfg(test)]
mod tests;

use sqlx::PgConnection;

use crate::batch::Slice;
use crate::projection::Counts;
use crate::projection::Sink;

/// Loads the accounts the batch touches, folds the batch (truncating poisoned slices) and
/// writes the rows.
pub async fn project(
    conn: &mut PgConnection,
    sink: &Sink,
    slices: &mut [Slice],
) -> Result<Counts, sqlx::Error> {
    let ids = fold::touched_accounts(slices);
    let prior = write::load_accounts(conn, sink, &ids).await?;
    let rows = fold::fold(prior, slices);
    write::write(conn, sink, &rows).await?;
    Ok(Counts {
        applied: rows.applied,
        duplicates: rows.duplicates,
    })
}
