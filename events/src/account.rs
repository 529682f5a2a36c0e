//! Account event payloads: the typed [`AccountEvent`] and its versioned JSON `data`.
//!
//! [`AccountEvent::to_data`] writes the current schema version of each type (the
//! variant's fields, snake_case, `None` left out). [`AccountEvent::decode`] reads
//! every supported `(event_type, schema_version)` through a frozen wire struct in
//! the private `v1` and `v2` modules, the Rust twins of `schemas/events/<Type>.json`
//! (the version written today) and `schemas/events/<Type>.v<N>.json` (older versions).
//!
//! Changing an event's shape (never editing history): change the variant, make
//! [`AccountEvent::schema_version`] return the next version for that type, add a wire
//! struct and a `("Type", N)` arm to `decode`, keep the older arms and let them upcast
//! (fill what the new version added with what the old one implied), move the old JSON
//! Schema to `<Type>.v<N-1>.json` and publish the new one as `<Type>.json`.
//! `TransferCredited` went this way: version 2 adds the debit's origin ([`DebitOrigin`]);
//! so did `AccountOpened`: version 2 adds the holder's sealed personal data
//! ([`SealedHolder`]), and an account opened without one is still written as version 1.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::currency::Currency;
use crate::holder::SealedHolder;
use crate::wire::CodecError;

/// Every account event type this code can read and write.
pub const ALL_EVENT_TYPES: &[&str] = &[
    "AccountOpened",
    "FundsDeposited",
    "FundsWithdrawn",
    "TransferDebited",
    "TransferCredited",
    "TransferRefunded",
    "TransferCompleted",
    "AccountFrozen",
    "AccountUnfrozen",
    "AccountClosed",
    "OverdraftLimitChanged",
    "HolderChanged",
];

/// The schema version written today for `event_type` (older ones are still read).
pub fn current_schema_version(event_type: &str) -> u32 {
    match event_type {
        "TransferCredited" | "AccountOpened" => 2,
        _ => 1,
    }
}

/// The name of the JSON Schema (in `schemas/events/`, without `.json`) of the `data` of
/// `event_type` at `schema_version`: `<Type>` for the version written today, `<Type>.v<N>` for
/// older ones.
pub fn schema_name(event_type: &str, schema_version: u32) -> String {
    if schema_version == current_schema_version(event_type) {
        event_type.to_owned()
    } else {
        format!("{event_type}.v{schema_version}")
    }
}

/// A fact about one account. Amounts are positive minor units; `balance_after` is
/// the account balance once the event is applied.
///
/// `Serialize` writes the bare `data` object of the current schema version (no tag:
/// the type travels in the envelope's `event_type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AccountEvent {
    /// The account exists, with a fixed currency and an overdraft limit (≥ 0), and the
    /// holder's personal data, sealed (schema version 2; version 1 had no holder).
    AccountOpened {
        owner_id: String,
        currency: Currency,
        overdraft_limit: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        holder: Option<SealedHolder>,
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
        /// Where and when the money left the source (schema version 2; absent in version 1).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        debit: Option<DebitOrigin>,
    },
    /// A debited transfer could not be credited; the amount came back.
    TransferRefunded {
        transfer_id: Uuid,
        amount: i64,
        balance_after: i64,
        reason: String,
    },
    /// The target of an outgoing transfer was credited: the transfer is no longer in flight.
    TransferCompleted {
        transfer_id: Uuid,
        to_account_id: Uuid,
        amount: i64,
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
    /// The bank set a new overdraft limit (≥ 0, and at least the current overdraft).
    OverdraftLimitChanged { overdraft_limit: i64 },
    /// The holder's personal data changed: the sealed fields given replace the old ones.
    HolderChanged { holder: SealedHolder },
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
            AccountEvent::TransferCompleted { .. } => "TransferCompleted",
            AccountEvent::AccountFrozen { .. } => "AccountFrozen",
            AccountEvent::AccountUnfrozen { .. } => "AccountUnfrozen",
            AccountEvent::AccountClosed { .. } => "AccountClosed",
            AccountEvent::OverdraftLimitChanged { .. } => "OverdraftLimitChanged",
            AccountEvent::HolderChanged { .. } => "HolderChanged",
        }
    }

    /// The schema version [`Self::to_data`] writes for this event.
    pub fn schema_version(&self) -> u32 {
        match self {
            AccountEvent::TransferCredited { debit: Some(_), .. } => 2,
            AccountEvent::AccountOpened {
                holder: Some(_), ..
            } => 2,
            _ => 1,
        }
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
    pub fn decode<D: EventData + ?Sized>(
        event_type: &str,
        schema_version: u32,
        data: &D,
    ) -> Result<AccountEvent, CodecError> {
        let Some(&known) = ALL_EVENT_TYPES.iter().find(|t| **t == event_type) else {
            return Err(CodecError::UnknownEventType(event_type.to_owned()));
        };
        let read = Reader {
            event_type: known,
            schema_version,
            data: data.event_data(),
        };
        match (known, schema_version) {
            ("AccountOpened", 1) => read.v1(|d: v1::AccountOpened| AccountEvent::AccountOpened {
                owner_id: d.owner_id,
                currency: d.currency,
                overdraft_limit: d.overdraft_limit,
                holder: None,
            }),
            // version 2 adds the holder's sealed personal data
            ("AccountOpened", 2) => read.v1(|d: v2::AccountOpened| AccountEvent::AccountOpened {
                owner_id: d.owner_id,
                currency: d.currency,
                overdraft_limit: d.overdraft_limit,
                holder: Some(d.holder),
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
            // version 1 did not say where the money came from: upcast without an origin
            ("TransferCredited", 1) => {
                read.v1(|d: v1::TransferCredited| AccountEvent::TransferCredited {
                    transfer_id: d.transfer_id,
                    from_account_id: d.from_account_id,
                    amount: d.amount,
                    balance_after: d.balance_after,
                    reference: d.reference,
                    debit: None,
                })
            }
            ("TransferCredited", 2) => {
                read.v1(|d: v2::TransferCredited| AccountEvent::TransferCredited {
                    transfer_id: d.transfer_id,
                    from_account_id: d.from_account_id,
                    amount: d.amount,
                    balance_after: d.balance_after,
                    reference: d.reference,
                    debit: Some(DebitOrigin {
                        partition: d.debit_partition,
                        at: d.debited_at,
                    }),
                })
            }
            ("TransferCompleted", 1) => {
                read.v1(|d: v1::TransferCompleted| AccountEvent::TransferCompleted {
                    transfer_id: d.transfer_id,
                    to_account_id: d.to_account_id,
                    amount: d.amount,
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
            ("OverdraftLimitChanged", 1) => {
                read.v1(
                    |d: v1::OverdraftLimitChanged| AccountEvent::OverdraftLimitChanged {
                        overdraft_limit: d.overdraft_limit,
                    },
                )
            }
            ("HolderChanged", 1) => {
                read.v1(|d: v1::HolderChanged| AccountEvent::HolderChanged { holder: d.holder })
            }
            _ => Err(CodecError::UnsupportedSchemaVersion {
                event_type: known.to_owned(),
                schema_version,
            }),
        }
    }
}

/// The `data` of an envelope, in either form [`AccountEvent::decode`] reads: a tree of values,
/// or the JSON text as written (a [`crate::RawEnvelope`]'s).
pub trait EventData {
    fn event_data(&self) -> Data<'_>;
}

/// `data` as a tree of values or as JSON text.
#[derive(Debug, Clone, Copy)]
pub enum Data<'a> {
    Tree(&'a Value),
    Text(&'a str),
}

impl EventData for Value {
    fn event_data(&self) -> Data<'_> {
        Data::Tree(self)
    }
}

impl EventData for Box<RawValue> {
    fn event_data(&self) -> Data<'_> {
        Data::Text(self.get())
    }
}

/// Where and when the money of a transfer left its source: the source's events partition and
/// the debit's `occurred_at`. Within one partition debits have strictly increasing
/// `occurred_at` (the processor stamps them so), and the saga sends the credits of one source
/// partition in log order, so a target that remembers the latest origin it was credited from
/// per source partition applies every debit's credit at most once, however often it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DebitOrigin {
    #[serde(rename = "debit_partition")]
    pub partition: i32,
    #[serde(rename = "debited_at", with = "crate::wire::micros_rfc3339")]
    pub at: DateTime<Utc>,
}

/// One decoding attempt, carrying what an error report needs.
struct Reader<'a> {
    event_type: &'static str,
    schema_version: u32,
    data: Data<'a>,
}

impl Reader<'_> {
    /// Deserializes `data` into the wire struct `T` (of any version) and converts it with `into`.
    fn v1<T: DeserializeOwned>(
        &self,
        into: impl FnOnce(T) -> AccountEvent,
    ) -> Result<AccountEvent, CodecError> {
        // Serde would also take a struct from an array; the format is an object.
        let read = match self.data {
            Data::Tree(value) if value.is_object() => T::deserialize(value),
            Data::Text(text) if text.trim_start().starts_with('{') => serde_json::from_str(text),
            _ => Err(serde::de::Error::custom("event data must be a JSON object")),
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

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransferCompleted {
        pub transfer_id: Uuid,
        pub to_account_id: Uuid,
        pub amount: i64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct OverdraftLimitChanged {
        pub overdraft_limit: i64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct HolderChanged {
        pub holder: crate::holder::SealedHolder,
    }

    /// `AccountFrozen`, `AccountUnfrozen` and `AccountClosed`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct StatusChanged {
        #[serde(default)]
        pub reason: Option<String>,
    }
}

/// Schema version 2 of the event types that have one (frozen).
mod v2 {
    use chrono::{DateTime, Utc};
    use serde::Deserialize;
    use uuid::Uuid;

    /// Version 1 plus the holder's sealed personal data.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AccountOpened {
        pub owner_id: String,
        pub currency: crate::currency::Currency,
        pub overdraft_limit: i64,
        pub holder: crate::holder::SealedHolder,
    }

    /// Version 1 plus the debit's origin.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TransferCredited {
        pub transfer_id: Uuid,
        pub from_account_id: Uuid,
        pub amount: i64,
        pub balance_after: i64,
        #[serde(default)]
        pub reference: Option<String>,
        pub debit_partition: i32,
        #[serde(with = "crate::wire::micros_rfc3339")]
        pub debited_at: DateTime<Utc>,
    }
}
