//! What a caller can ask of an account: [`AccountCommand`] and the checks that need
//! no state (amount ranges, string lengths, distinct accounts).
//!
//! Commands travel on `logbook.commands` as JSON tagged by `type`, e.g.
//! `{"type":"deposit","amount":500,"reference":"salary"}`.

use logbook_events::{Currency, DebitOrigin, SealedHolder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::{MAX_AMOUNT, MAX_OWNER_ID_CHARS, MAX_REASON_CHARS, MAX_REFERENCE_CHARS};

/// A request to change one account. Amounts are positive minor units.
///
/// `CreditForTransfer`, `RefundTransfer` and `CompleteTransfer` are the transfer saga's steps:
/// no HTTP endpoint sends them, and they are applied at most once by the account's own state
/// (see [`decide`](super::decide)), whatever their age.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountCommand {
    /// Create the account with a fixed currency and an overdraft limit, and optionally the
    /// holder's personal data (sealed by the gateway).
    Open {
        owner_id: String,
        currency: Currency,
        overdraft_limit: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<SealedHolder>,
    },
    /// Pay money in.
    Deposit {
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Pay money out.
    Withdraw {
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// First leg of a transfer, on the source account.
    DebitForTransfer {
        transfer_id: Uuid,
        to_account_id: Uuid,
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Second leg of a transfer, on the target account; `currency` is the source's, `debit`
    /// where and when the money left it.
    CreditForTransfer {
        transfer_id: Uuid,
        from_account_id: Uuid,
        amount: i64,
        currency: Currency,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        debit: DebitOrigin,
    },
    /// Give back a debited transfer that could not be credited, on the source account.
    RefundTransfer {
        transfer_id: Uuid,
        amount: i64,
        reason: String,
    },
    /// Tell the source account that the target was credited (the transfer leaves its
    /// transfers in flight).
    CompleteTransfer {
        transfer_id: Uuid,
        to_account_id: Uuid,
        amount: i64,
    },
    /// Stop debits (credits still arrive).
    Freeze {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Allow debits again.
    Unfreeze {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Close the account for good (only at a zero balance).
    Close {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Set how far below zero the balance may go (a credit decision of the bank).
    SetOverdraftLimit { overdraft_limit: i64 },
    /// Replace the holder's personal fields that `holder` gives (sealed by the gateway).
    ChangeHolder { holder: SealedHolder },
}

impl AccountCommand {
    /// The serde `type` tag, e.g. `"debit_for_transfer"` (also a metrics label).
    pub fn name(&self) -> &'static str {
        match self {
            AccountCommand::Open { .. } => "open",
            AccountCommand::Deposit { .. } => "deposit",
            AccountCommand::Withdraw { .. } => "withdraw",
            AccountCommand::DebitForTransfer { .. } => "debit_for_transfer",
            AccountCommand::CreditForTransfer { .. } => "credit_for_transfer",
            AccountCommand::RefundTransfer { .. } => "refund_transfer",
            AccountCommand::CompleteTransfer { .. } => "complete_transfer",
            AccountCommand::Freeze { .. } => "freeze",
            AccountCommand::Unfreeze { .. } => "unfreeze",
            AccountCommand::Close { .. } => "close",
            AccountCommand::SetOverdraftLimit { .. } => "set_overdraft_limit",
            AccountCommand::ChangeHolder { .. } => "change_holder",
        }
    }

    /// Whether this is a step of the transfer saga (deduplicated by account state, never
    /// expired).
    pub fn is_saga_step(&self) -> bool {
        matches!(
            self,
            AccountCommand::CreditForTransfer { .. }
                | AccountCommand::RefundTransfer { .. }
                | AccountCommand::CompleteTransfer { .. }
        )
    }

    /// The checks that need no account state; [`decide`](super::decide) runs them first.
    /// The gateway may call this to answer 422 before producing the command.
    /// `account_id` is the target account (for the distinct-accounts rule).
    pub fn validate(&self, account_id: Uuid) -> Result<(), DomainError> {
        match self {
            AccountCommand::Open {
                owner_id,
                overdraft_limit,
                holder,
                ..
            } => {
                let chars = owner_id.chars().count();
                if chars == 0 || chars > MAX_OWNER_ID_CHARS {
                    return Err(invalid("owner_id", "must be 1 to 128 characters long"));
                }
                if !(0..=MAX_AMOUNT).contains(overdraft_limit) {
                    return Err(DomainError::InvalidOverdraftLimit);
                }
                holder.as_ref().map_or(Ok(()), check_holder)
            }
            AccountCommand::ChangeHolder { holder } => check_holder(holder),
            AccountCommand::Deposit { amount, reference }
            | AccountCommand::Withdraw { amount, reference } => {
                check_amount(*amount)?;
                check_reference(reference.as_deref())
            }
            AccountCommand::DebitForTransfer {
                transfer_id,
                to_account_id,
                amount,
                reference,
            } => {
                check_transfer(*transfer_id, *to_account_id, account_id, "to_account_id")?;
                check_amount(*amount)?;
                check_reference(reference.as_deref())
            }
            AccountCommand::CreditForTransfer {
                transfer_id,
                from_account_id,
                amount,
                reference,
                ..
            } => {
                check_transfer(
                    *transfer_id,
                    *from_account_id,
                    account_id,
                    "from_account_id",
                )?;
                check_amount(*amount)?;
                check_reference(reference.as_deref())
            }
            AccountCommand::RefundTransfer {
                transfer_id,
                amount,
                reason,
            } => {
                if transfer_id.is_nil() {
                    return Err(invalid("transfer_id", "must not be the nil UUID"));
                }
                check_amount(*amount)?;
                let chars = reason.chars().count();
                if chars == 0 || chars > MAX_REASON_CHARS {
                    return Err(invalid("reason", "must be 1 to 500 characters long"));
                }
                Ok(())
            }
            AccountCommand::CompleteTransfer {
                transfer_id,
                to_account_id,
                amount,
            } => {
                check_transfer(*transfer_id, *to_account_id, account_id, "to_account_id")?;
                check_amount(*amount)
            }
            AccountCommand::SetOverdraftLimit { overdraft_limit } => {
                if (0..=MAX_AMOUNT).contains(overdraft_limit) {
                    Ok(())
                } else {
                    Err(DomainError::InvalidOverdraftLimit)
                }
            }
            AccountCommand::Freeze { reason }
            | AccountCommand::Unfreeze { reason }
            | AccountCommand::Close { reason } => match reason {
                Some(r) if r.chars().count() > MAX_REASON_CHARS => {
                    Err(invalid("reason", "must be at most 500 characters long"))
                }
                _ => Ok(()),
            },
        }
    }
}

fn invalid(field: &'static str, problem: &'static str) -> DomainError {
    DomainError::InvalidField { field, problem }
}

/// A holder must give at least one field, and every field sealed: personal data never enters
/// the log in plain text, whoever produces the command.
fn check_holder(holder: &SealedHolder) -> Result<(), DomainError> {
    if holder.is_empty() {
        return Err(invalid("holder", "must give at least one field"));
    }
    match holder.first_unsealed() {
        Some(field) => Err(DomainError::InvalidField {
            field: match field {
                "name" => "holder/name",
                "email" => "holder/email",
                "address" => "holder/address",
                _ => "holder/birth_date",
            },
            problem: "must be sealed by the gateway, never plain text",
        }),
        None => Ok(()),
    }
}

fn check_amount(amount: i64) -> Result<(), DomainError> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(())
    } else {
        Err(DomainError::InvalidAmount)
    }
}

fn check_reference(reference: Option<&str>) -> Result<(), DomainError> {
    match reference {
        Some(r) if r.chars().count() > MAX_REFERENCE_CHARS => {
            Err(invalid("reference", "must be at most 140 characters long"))
        }
        _ => Ok(()),
    }
}

fn check_transfer(
    transfer_id: Uuid,
    other: Uuid,
    this: Uuid,
    other_field: &'static str,
) -> Result<(), DomainError> {
    if transfer_id.is_nil() {
        return Err(invalid("transfer_id", "must not be the nil UUID"));
    }
    if other.is_nil() {
        return Err(invalid(other_field, "must not be the nil UUID"));
    }
    if other == this {
        return Err(DomainError::SameAccount { field: other_field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limit_messages_match_the_constants() {
        // The `problem` texts above spell the limits out; change both together.
        assert_eq!(
            (MAX_OWNER_ID_CHARS, MAX_REFERENCE_CHARS, MAX_REASON_CHARS),
            (128, 140, 500)
        );
    }

    #[test]
    fn serde_is_tagged_by_snake_case_type() {
        let command = AccountCommand::DebitForTransfer {
            transfer_id: Uuid::from_u128(1),
            to_account_id: Uuid::from_u128(2),
            amount: 5,
            reference: None,
        };
        let json = serde_json::to_value(&command).expect("ser");
        assert_eq!(json["type"], "debit_for_transfer");
        assert_eq!(json["type"], command.name());
        assert!(json.get("reference").is_none());
        let back: AccountCommand = serde_json::from_value(json).expect("de");
        assert_eq!(back, command);
    }

    #[test]
    fn serde_accepts_null_or_absent_options_and_rejects_unknown_fields() {
        let absent: AccountCommand =
            serde_json::from_value(json!({"type": "close"})).expect("absent");
        let null: AccountCommand =
            serde_json::from_value(json!({"type": "close", "reason": null})).expect("null");
        assert_eq!(absent, AccountCommand::Close { reason: None });
        assert_eq!(null, absent);
        let extra = json!({"type": "deposit", "amount": 1, "memo": "x"});
        assert!(serde_json::from_value::<AccountCommand>(extra).is_err());
        let unknown = json!({"type": "steal", "amount": 1});
        assert!(serde_json::from_value::<AccountCommand>(unknown).is_err());
        let bad_currency =
            json!({"type": "open", "owner_id": "o", "currency": "eur", "overdraft_limit": 0});
        assert!(serde_json::from_value::<AccountCommand>(bad_currency).is_err());
    }
}
