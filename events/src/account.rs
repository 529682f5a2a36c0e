//! Account event payloads: the typed [`AccountEvent`] and its versioned JSON `data`.
//!
//! [`AccountEvent::to_data`] writes the current schema version of each type (the
//! variant's fields, snake_case, `None` left out). [`AccountEvent::decode`] reads
//! every supported `(event_type, schema_version)` through a frozen wire struct in
//! the private `v1` module, the Rust twin of `schemas/events/<Type>.json`.
//!
//! Changing an event's shape (never editing history): change the variant, make
//! [`AccountEvent::schema_version`] return 2 for that type, add a `v2` wire struct
//! and a `("Type", 2)` arm to `decode`, keep the `("Type", 1)` arm and let it upcast
//! (fill what v2 added with what v1 implied), and publish the new JSON Schema.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::codec::CodecError;
use crate::currency::Currency;

/// Every account event type this code can read and write.
pub const ALL_EVENT_TYPES: &[&str] = &[
    "AccountOpened",
    "FundsDeposited",
    "FundsWithdrawn",
    "TransferDebited",
    "TransferCredited",
    "TransferRefunded",
    "AccountFrozen",
    "AccountUnfrozen",
    "AccountClosed",
];

/// A fact about one account. Amounts are positive minor units; `balance_after` is
/// the account balance once the event is applied.
///
/// `Serialize` writes the bare `data` object of the current schema version (no tag:
/// the type travels in the envelope's `event_type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AccountEvent {
    /// The account exists, with a fixed currency and an overdraft limit (≥ 0).
    AccountOpened {
        owner_id: String,
        currency: Currency,
        overdraft_limit: i64,
    },
    /// Money was paid in.
    FundsDeposited {
        amount: i64,
        balance_after: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Money was paid out.
    FundsWithdrawn {
        amount: i64,
        balance_after: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// First leg of a transfer: this account was debited.
    TransferDebited {
        transfer_id: Uuid,
        to_account_id: Uuid,
        amount: i64,
        currency: Currency,
        balance_after: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Second leg of a transfer: this account was credited.
    TransferCredited {
        transfer_id: Uuid,
        from_account_id: Uuid,
        amount: i64,
        balance_after: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A debited transfer could not be credited; the amount came back.
    TransferRefunded {
        transfer_id: Uuid,
        amount: i64,
        balance_after: i64,
        reason: String,
    },
    /// The account takes no more debits until unfrozen.
    AccountFrozen {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The account is active again.
    AccountUnfrozen {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The account takes nothing any more.
    AccountClosed {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl AccountEvent {
    /// The event type name, e.g. `"FundsDeposited"`.
    pub fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::FundsDeposited { .. } => "FundsDeposited",
            AccountEvent::FundsWithdrawn { .. } => "FundsWithdrawn",
            AccountEvent::TransferDebited { .. } => "TransferDebited",
            AccountEvent::TransferCredited { .. } => "TransferCredited",
            AccountEvent::TransferRefunded { .. } => "TransferRefunded",
            AccountEvent::AccountFrozen { .. } => "AccountFrozen",
            AccountEvent::AccountUnfrozen { .. } => "AccountUnfrozen",
            AccountEvent::AccountClosed { .. } => "AccountClosed",
        }
    }

    /// The schema version [`Self::to_data`] writes for this event type.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// The `data` object of the envelope, in the current schema version.
    ///
    /// `None` options are left out (readers also accept `null`).
    pub fn to_data(&self) -> Value {
        // The variants hold strings, integers, UUIDs and currencies only.
        serde_json::to_value(self).expect("event data always serializes")
    }

    /// Reads the `data` of an envelope with this `event_type` and `schema_version`.
    ///
    /// Unknown types, unsupported versions and data that does not match the wire
    /// struct (missing, extra or mistyped fields) are errors. Older versions are
    /// upcast here to the current [`AccountEvent`].
    pub fn decode(
        event_type: &str,
        schema_version: u32,
        data: &Value,
    ) -> Result<AccountEvent, CodecError> {
        let Some(&known) = ALL_EVENT_TYPES.iter().find(|t| **t == event_type) else {
            return Err(CodecError::UnknownEventType(event_type.to_owned()));
        };
        let read = Reader {
            event_type: known,
            schema_version,
            data,
        };
        match (known, schema_version) {
            ("AccountOpened", 1) => read.v1(|d: v1::AccountOpened| AccountEvent::AccountOpened {
                owner_id: d.owner_id,
                currency: d.currency,
                overdraft_limit: d.overdraft_limit,
            }),
            ("FundsDeposited", 1) => read.v1(|d: v1::FundsMoved| AccountEvent::FundsDeposited {
                amount: d.amount,
                balance_after: d.balance_after,
                reference: d.reference,
            }),
            ("FundsWithdrawn", 1) => read.v1(|d: v1::FundsMoved| AccountEvent::FundsWithdrawn {
                amount: d.amount,
                balance_after: d.balance_after,
                reference: d.reference,
            }),
            ("TransferDebited", 1) => {
                read.v1(|d: v1::TransferDebited| AccountEvent::TransferDebited {
                    transfer_id: d.transfer_id,
                    to_account_id: d.to_account_id,
                    amount: d.amount,
                    currency: d.currency,
                    balance_after: d.balance_after,
                    reference: d.reference,
                })
            }
            ("TransferCredited", 1) => {
                read.v1(|d: v1::TransferCredited| AccountEvent::TransferCredited {
                    transfer_id: d.transfer_id,
                    from_account_id: d.from_account_id,
                    amount: d.amount,
                    balance_after: d.balance_after,
                    reference: d.reference,
                })
            }
            ("TransferRefunded", 1) => {
                read.v1(|d: v1::TransferRefunded| AccountEvent::TransferRefunded {
                    transfer_id: d.transfer_id,
                    amount: d.amount,
                    balance_after: d.balance_after,
                    reason: d.reason,
                })
            }
            ("AccountFrozen", 1) => {
                read.v1(|d: v1::StatusChanged| AccountEvent::AccountFrozen { reason: d.reason })
            }
            ("AccountUnfrozen", 1) => {
                read.v1(|d: v1::StatusChanged| AccountEvent::AccountUnfrozen { reason: d.reason })
            }
            ("AccountClosed", 1) => {
                read.v1(|d: v1::StatusChanged| AccountEvent::AccountClosed { reason: d.reason })
            }
            _ => Err(CodecError::UnsupportedSchemaVersion {
                event_type: known.to_owned(),
                schema_version,
            }),
        }
    }
}

/// One decoding attempt, carrying what an error report needs.
struct Reader<'a> {
    event_type: &'static str,
    schema_version: u32,
    data: &'a Value,
}

impl Reader<'_> {
    /// Deserializes `data` into the v1 wire struct `T` and converts it with `into`.
    fn v1<T: DeserializeOwned>(
        &self,
        into: impl FnOnce(T) -> AccountEvent,
    ) -> Result<AccountEvent, CodecError> {
        let read = if self.data.is_object() {
            T::deserialize(self.data)
        } else {
            // Serde would also take a struct from an array; the format is an object.
            Err(serde::de::Error::custom("event data must be a JSON object"))
        };
        read.map(into).map_err(|source| CodecError::InvalidData {
            event_type: self.event_type,
            schema_version: self.schema_version,
            source,
        })
    }
}

/// Schema version 1 of every account event's `data` (frozen; see the module docs).
mod v1 {
    use serde::Deserialize;
    use uuid::Uuid;

    use crate::currency::Currency;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AccountOpened {
        pub owner_id: String,
        pub currency: Currency,
        pub overdraft_limit: i64,
    }

    /// `FundsDeposited` and `FundsWithdrawn`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct FundsMoved {
        pub amount: i64,
        pub balance_after: i64,
        #[serde(default)]
        pub reference: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransferDebited {
        pub transfer_id: Uuid,
        pub to_account_id: Uuid,
        pub amount: i64,
        pub currency: Currency,
        pub balance_after: i64,
        #[serde(default)]
        pub reference: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransferCredited {
        pub transfer_id: Uuid,
        pub from_account_id: Uuid,
        pub amount: i64,
        pub balance_after: i64,
        #[serde(default)]
        pub reference: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransferRefunded {
        pub transfer_id: Uuid,
        pub amount: i64,
        pub balance_after: i64,
        pub reason: String,
    }

    /// `AccountFrozen`, `AccountUnfrozen` and `AccountClosed`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct StatusChanged {
        #[serde(default)]
        pub reason: Option<String>,
    }
}
