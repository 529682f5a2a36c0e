//! The request bodies both peer servers (plain PostgreSQL, cqrs-es) accept: the same shapes as
//! Logbook's command endpoints.

use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub(crate) struct OpenBody {
    pub(crate) owner_id: String,
    pub(crate) currency: String,
    pub(crate) overdraft_limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AmountBody {
    pub(crate) amount: i64,
    pub(crate) reference: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransferBody {
    pub(crate) from_account_id: Uuid,
    pub(crate) to_account_id: Uuid,
    pub(crate) amount: i64,
    pub(crate) reference: Option<String>,
}
