//! Personal data of account holders: sealed at the gateway before a command is produced, opened
//! at query time for the roles allowed to see it, erased by destroying the owner's key
//! (crypto-shredding). docs/security.md, "Personal data", explains the key hierarchy.
//!
//! - [`crypto`]: AES-256-GCM sealing of field values and wrapping of data keys ([`KeyRing`]).
//! - [`store`]: the owners' wrapped data keys and the erasure list in PostgreSQL ([`KeyStore`]).
//! - [`holder`]: the holder's fields as requests give them, sealed, and as callers see them.

pub mod crypto;
pub mod holder;
pub mod store;

pub use crypto::{CryptoError, DataKey, KeyRing};
pub use holder::{HolderInput, HolderView, Visibility};
pub use store::{KeyStore, KeyStoreError};

use logbook_events::SealedHolder;
use uuid::Uuid;

use crate::auth::Role;

/// The holder of `account_id` (its `holder` column) as `role` may see it; `None` when the
/// account has no holder data or the role sees none of it.
pub async fn view(
    store: &KeyStore,
    account_id: Uuid,
    holder_column: Option<&str>,
    role: Role,
) -> Result<Option<HolderView>, KeyStoreError> {
    let visibility = Visibility::of(role);
    let Some(json) = holder_column.filter(|_| visibility != Visibility::Nothing) else {
        return Ok(None);
    };
    let sealed: SealedHolder = match serde_json::from_str(json) {
        Ok(sealed) => sealed,
        Err(error) => {
            tracing::error!(%account_id, %error, "unreadable holder column");
            return Ok(None);
        }
    };
    let keys = store.opening_keys(&holder::key_ids(&sealed)).await?;
    Ok(holder::open(&sealed, account_id, &keys, visibility))
}
