//! The owners' data keys in PostgreSQL (`owner_keys`, wrapped by the key ring) and the erasure
//! list (`owner_erasures`).
//!
//! One key per owner, made on first use; erasure deletes it and records the owner, after which
//! every value sealed with it reads as erased, wherever a copy of it lives. A key made for the
//! owner afterwards is a new key: it opens only what is sealed from then on.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use super::crypto::{CryptoError, DataKey, KeyRing, random_key};

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("no data key could be made for this owner (erased at this very instant?)")]
    NoKey,
}

type KeyRow = (Uuid, String, String, Vec<u8>);

/// The data keys, unwrapped on demand with the key ring (cheap to clone).
#[derive(Debug, Clone)]
pub struct KeyStore {
    pool: PgPool,
    ring: Arc<KeyRing>,
}

impl KeyStore {
    pub fn new(pool: PgPool, ring: Arc<KeyRing>) -> KeyStore {
        KeyStore { pool, ring }
    }

    /// The owner's data key, made (and wrapped under the current key-encryption key) when the
    /// owner has none. Concurrent callers agree on one key.
    pub async fn sealing_key(&self, owner_id: &str) -> Result<DataKey, KeyStoreError> {
        if let Some(key) = self.owner_key(owner_id).await? {
            return Ok(key);
        }
        let key_id = Uuid::new_v4();
        let raw = random_key()?;
        let wrapped = self.ring.wrap(owner_id, key_id, &raw)?;
        sqlx::query(
            "INSERT INTO owner_keys (key_id, owner_id, kek_id, wrapped_key) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner_id) DO NOTHING",
        )
        .bind(key_id)
        .bind(owner_id)
        .bind(self.ring.current_id())
        .bind(&wrapped)
        .execute(&self.pool)
        .await?;
        self.owner_key(owner_id).await?.ok_or(KeyStoreError::NoKey)
    }

    async fn owner_key(&self, owner_id: &str) -> Result<Option<DataKey>, KeyStoreError> {
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT key_id, owner_id, kek_id, wrapped_key FROM owner_keys WHERE owner_id = $1",
        )
        .bind(owner_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.unwrap(row)).transpose()
    }

    /// The keys with these ids that still exist (an erased key is simply absent); `None` for a
    /// key that exists but cannot be unwrapped here (its key-encryption key is not configured),
    /// which is logged.
    pub async fn opening_keys(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<DataKey>>, KeyStoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT key_id, owner_id, kek_id, wrapped_key FROM owner_keys WHERE key_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let key_id = row.0;
                let key = self
                    .unwrap(row)
                    .inspect_err(
                        |error| tracing::error!(%key_id, %error, "a data key did not unwrap"),
                    )
                    .ok();
                (key_id, key)
            })
            .collect())
    }

    /// Erases the owner: deletes its data key and records the erasure. Returns whether a key
    /// was deleted (erasing an owner twice, or one that never had personal data, is fine).
    pub async fn erase(
        pool: &PgPool,
        owner_id: &str,
        erased_by: &str,
    ) -> Result<bool, KeyStoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO owner_erasures (owner_id, erased_at, erased_by) VALUES ($1, now(), $2) \
             ON CONFLICT (owner_id) DO UPDATE SET erased_at = now(), erased_by = EXCLUDED.erased_by",
        )
        .bind(owner_id)
        .bind(erased_by)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM owner_keys WHERE owner_id = $1")
            .bind(owner_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Rewraps every data key not wrapped by the current key-encryption key (needs the old
    /// ones in the ring). Sealed values are untouched: they depend on the data keys only.
    /// Returns how many keys were rewrapped.
    pub async fn rotate(&self) -> Result<u64, KeyStoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT key_id, owner_id, kek_id, wrapped_key FROM owner_keys WHERE kek_id <> $1",
        )
        .bind(self.ring.current_id())
        .fetch_all(&self.pool)
        .await?;
        let mut rewrapped = 0;
        for (key_id, owner_id, kek_id, wrapped) in rows {
            let raw = self.ring.unwrap(&kek_id, &owner_id, key_id, &wrapped)?;
            let again = self.ring.wrap(&owner_id, key_id, &raw)?;
            rewrapped += sqlx::query(
                "UPDATE owner_keys SET kek_id = $2, wrapped_key = $3 WHERE key_id = $1 AND kek_id = $4",
            )
            .bind(key_id)
            .bind(self.ring.current_id())
            .bind(&again)
            .bind(&kek_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(rewrapped)
    }

    fn unwrap(
        &self,
        (key_id, owner_id, kek_id, wrapped): KeyRow,
    ) -> Result<DataKey, KeyStoreError> {
        let raw = self.ring.unwrap(&kek_id, &owner_id, key_id, &wrapped)?;
        Ok(DataKey::new(key_id, &raw)?)
    }
}
