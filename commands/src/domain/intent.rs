//! What a command asks for, as a small fingerprint, and which command an event answers.
//!
//! The processor remembers applied command ids with the fingerprint of what they asked for, so
//! a known command id that arrives with another payload is refused instead of being answered
//! as a duplicate of something else. After a restore the fingerprints come from the log:
//! [`command_of`] gives back the command an accepted event was decided from.

use std::hash::{Hash, Hasher};

use logbook_events::AccountEvent;
use uuid::Uuid;

use super::command::AccountCommand;
use super::state::Account;

/// A stable 64-bit fingerprint of `command` on `aggregate_id` (FNV-1a over the command's
/// fields). Equal inputs give equal fingerprints within one build of Logbook, which is all the
/// processor needs: it computes them afresh, also for what it restores.
pub fn fingerprint(aggregate_id: Uuid, command: &AccountCommand) -> u64 {
    let mut hasher = Fnv1a::default();
    aggregate_id.hash(&mut hasher);
    command.hash(&mut hasher);
    hasher.finish()
}

/// The command that `event` was decided from, on `account` as it was before the event.
pub fn command_of(account: &Account, event: &AccountEvent) -> Option<AccountCommand> {
    let command = match event.clone() {
        AccountEvent::AccountOpened {
            owner_id,
            currency,
            overdraft_limit,
            holder,
        } => AccountCommand::Open {
            owner_id,
            currency,
            overdraft_limit,
            holder,
        },
        AccountEvent::FundsDeposited {
            amount, reference, ..
        } => AccountCommand::Deposit { amount, reference },
        AccountEvent::FundsWithdrawn {
            amount, reference, ..
        } => AccountCommand::Withdraw { amount, reference },
        AccountEvent::TransferDebited {
            transfer_id,
            to_account_id,
            amount,
            reference,
            ..
        } => AccountCommand::DebitForTransfer {
            transfer_id,
            to_account_id,
            amount,
            reference,
        },
        AccountEvent::TransferCredited {
            transfer_id,
            from_account_id,
            amount,
            reference,
            debit,
            ..
        } => AccountCommand::CreditForTransfer {
            transfer_id,
            from_account_id,
            amount,
            currency: account.currency()?,
            reference,
            debit: debit?,
        },
        AccountEvent::TransferRefunded {
            transfer_id,
            amount,
            reason,
            ..
        } => AccountCommand::RefundTransfer {
            transfer_id,
            amount,
            reason,
        },
        AccountEvent::TransferCompleted {
            transfer_id,
            to_account_id,
            amount,
        } => AccountCommand::CompleteTransfer {
            transfer_id,
            to_account_id,
            amount,
        },
        AccountEvent::AccountFrozen { reason } => AccountCommand::Freeze { reason },
        AccountEvent::AccountUnfrozen { reason } => AccountCommand::Unfreeze { reason },
        AccountEvent::AccountClosed { reason } => AccountCommand::Close { reason },
        AccountEvent::OverdraftLimitChanged { overdraft_limit } => {
            AccountCommand::SetOverdraftLimit { overdraft_limit }
        }
        AccountEvent::HolderChanged { holder } => AccountCommand::ChangeHolder { holder },
    };
    Some(command)
}

/// 64-bit FNV-1a: small, fast and the same on every platform.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{apply, decide};
    use logbook_events::Currency;

    fn opened_account(id: Uuid) -> Account {
        let mut account = Account::new(id);
        let open = AccountCommand::Open {
            owner_id: "o".into(),
            currency: Currency::parse("EUR").expect("EUR"),
            overdraft_limit: 0,
            holder: None,
        };
        for event in decide(&account, &open).expect("opens") {
            apply(&mut account, &event);
        }
        account
    }

    #[test]
    fn an_event_gives_back_the_fingerprint_of_its_command() {
        let id = Uuid::from_u128(5);
        let account = opened_account(id);
        for command in [
            AccountCommand::Deposit {
                amount: 7,
                reference: Some("r".into()),
            },
            AccountCommand::Freeze { reason: None },
            AccountCommand::DebitForTransfer {
                transfer_id: Uuid::from_u128(9),
                to_account_id: Uuid::from_u128(6),
                amount: 0,
                reference: None,
            },
        ] {
            let Ok(events) = decide(&account, &command) else {
                continue;
            };
            let back = command_of(&account, &events[0]).expect("a command");
            assert_eq!(fingerprint(id, &back), fingerprint(id, &command));
        }
    }

    #[test]
    fn fingerprints_differ_by_account_and_payload() {
        let deposit = |amount| AccountCommand::Deposit {
            amount,
            reference: None,
        };
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(fingerprint(a, &deposit(5)), fingerprint(a, &deposit(5)));
        assert_ne!(fingerprint(a, &deposit(5)), fingerprint(a, &deposit(6)));
        assert_ne!(fingerprint(a, &deposit(5)), fingerprint(b, &deposit(5)));
        let withdraw = AccountCommand::Withdraw {
            amount: 5,
            reference: None,
        };
        assert_ne!(fingerprint(a, &deposit(5)), fingerprint(a, &withdraw));
    }
}
