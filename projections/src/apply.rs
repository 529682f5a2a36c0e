//! One projector batch = one PostgreSQL transaction: check and lock the offsets, write the
//! projection's rows, store the new offsets, queue the progress notice, commit.
//!
//! Nothing is half-applied: any error rolls the whole batch back, and the caller rewinds the
//! consumer to the offsets the batch started from.

use sqlx::PgPool;

use crate::batch::Slice;
use crate::ledger::staged::Staged;
pub use crate::projection::Counts;
use crate::projection::{Projection, Sink};
use crate::{archive, ledger, offsets};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another writer moved these partitions' offsets (partition, stored next offset): the
    /// batch was not applied; resume from the stored offsets.
    #[error("offsets moved under the batch: {0:?}")]
    Moved(Vec<(i32, i64)>),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Applies the slices in one transaction. Slices may come back truncated at a poison event
/// (their `to` and `poison` tell); what precedes it is applied.
///
/// With `staged` (a rebuild of the ledger), accounts and transfers fold onto the staged rows
/// and are staged again once the transaction has committed, not written (see
/// [`crate::ledger::staged`]).
pub async fn apply(
    pool: &PgPool,
    sink: &Sink,
    slices: &mut [Slice],
    staged: Option<&mut Staged>,
) -> Result<Counts, ApplyError> {
    let key = sink.offsets_key();
    let mut tx = pool.begin().await?;
    let moved = offsets::lock_and_check(&mut tx, &key, slices).await?;
    if !moved.is_empty() {
        tx.rollback().await?;
        return Err(ApplyError::Moved(moved));
    }
    let mut to_stage = None;
    let counts = match (sink.projection, &staged) {
        (Projection::Ledger, Some(staged)) => {
            let rows = ledger::project_staged(&mut tx, sink, slices, staged).await?;
            let counts = Counts {
                applied: rows.applied,
                duplicates: rows.duplicates,
            };
            to_stage = Some(rows);
            counts
        }
        (Projection::Ledger, None) => ledger::project(&mut tx, sink, slices).await?,
        (Projection::Archive, _) => {
            let inserted = archive::project(&mut tx, sink, slices).await?;
            let events: usize = slices.iter().map(|s| s.events.len()).sum();
            Counts {
                applied: inserted,
                duplicates: events.saturating_sub(inserted),
            }
        }
    };
    offsets::store(&mut tx, &key, slices).await?;
    tx.commit().await?;
    if let (Some(staged), Some(rows)) = (staged, to_stage) {
        staged.absorb(rows);
    }
    Ok(counts)
}
