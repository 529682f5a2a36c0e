//! One projector batch = one PostgreSQL transaction: check and lock the offsets, write the
//! projection's rows, store the new offsets, queue the progress notice, commit.
//!
//! Nothing is half-applied: any error rolls the whole batch back, and the caller rewinds the
//! consumer to the offsets the batch started from.

use sqlx::PgPool;

use crate::batch::Slice;
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
pub async fn apply(pool: &PgPool, sink: &Sink, slices: &mut [Slice]) -> Result<Counts, ApplyError> {
    let key = sink.offsets_key();
    let mut tx = pool.begin().await?;
    let moved = offsets::lock_and_check(&mut tx, &key, slices).await?;
    if !moved.is_empty() {
        tx.rollback().await?;
        return Err(ApplyError::Moved(moved));
    }
    let counts = match sink.projection {
        Projection::Ledger => ledger::project(&mut tx, sink, slices).await?,
        Projection::Archive => {
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
    Ok(counts)
}
