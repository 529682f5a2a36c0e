//! The `ledger` projection: `accounts`, `account_transactions` and `transfers`.
//!
//! - [`rows`]: the row types folded in memory;
//! - [`fold`]: the pure fold of a batch, with the model checks that poison a partition;
//! - [`events`]: what each event means for the rows (line, transfer leg, status);
//! - [`write`]: loading the touched accounts and the set-based writes;
//! - [`staged`]: a rebuild's account and transfer rows, kept in memory and written once.
//!
//! [`project`] runs the three inside the projector's transaction; [`project_staged`] is the
//! rebuild's variant.

pub mod events;
pub mod fold;
pub mod rows;
pub mod staged;
pub mod write;

#[cfg(test)]
mod tests;

use sqlx::PgConnection;

use crate::batch::Slice;
use crate::projection::Counts;
use crate::projection::Sink;
use rows::LedgerRows;
use staged::Staged;

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

/// The rebuild's variant of [`project`]: the batch folds onto the rows `staged` holds (reading
/// only what it has forgotten) and writes its lines; the account and transfer rows are
/// returned, to be handed to [`Staged::absorb`] once the transaction has committed.
pub async fn project_staged(
    conn: &mut PgConnection,
    sink: &Sink,
    slices: &mut [Slice],
    staged: &Staged,
) -> Result<LedgerRows, sqlx::Error> {
    let ids = fold::touched_accounts(slices);
    let (mut prior, missing) = staged.prior(&ids);
    prior.extend(write::load_accounts(conn, sink, &missing).await?);
    let mut rows = fold::fold(prior, slices);
    write::append_lines(conn, sink, &rows.lines).await?;
    rows.lines = Vec::new();
    Ok(rows)
}
