//! Authorization: the role matrix (docs/security.md, "Who may do what") as one table.
//!
//! [`access`] answers what a role may do for an [`Action`]: nothing, only on what it owns, or
//! everything. Ownership of an account is checked where the account's state is known: by the
//! command processor for commands, by the query for reads. A customer asking about an account
//! it does not own is answered 404, never 403, so existence is not revealed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    OpenAccount,
    Deposit,
    Withdraw,
    Transfer,
    Freeze,
    Unfreeze,
    Close,
    /// Change an account's overdraft limit (a credit decision of the bank).
    SetOverdraftLimit,
    /// Change the holder's personal data (name, email, address, birth date).
    ChangeHolder,
    /// Erase an owner's personal data (destroy its data key).
    EraseOwner,
    /// Status and currency of an account.
    ReadAccountStatus,
    /// Balance and everything else of an account.
    ReadAccount,
    ReadTransactions,
    Audit,
    ExportEvents,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Denied,
    /// Only on accounts the principal owns (owner_id = sub).
    Own,
    Any,
}

use Access::{Any, Denied, Own};
use Action::*;

/// The roles of the role matrix below (docs/security.md explains each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Support,
    Auditor,
    Analyst,
    Service,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Customer,
        Role::Support,
        Role::Auditor,
        Role::Analyst,
        Role::Service,
        Role::Admin,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Support => "support",
            Role::Auditor => "auditor",
            Role::Analyst => "analyst",
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }
}

/// Columns: customer, support, auditor, analyst, service, admin.
const MATRIX: &[(Action, [Access; 6])] = &[
    (OpenAccount, [Own, Denied, Denied, Denied, Any, Any]),
    // money enters from outside rails, through a service: customers do not deposit
    (Deposit, [Denied, Denied, Denied, Denied, Any, Any]),
    (Withdraw, [Own, Denied, Denied, Denied, Any, Any]),
    (Transfer, [Own, Denied, Denied, Denied, Any, Any]),
    (Freeze, [Denied, Any, Denied, Denied, Any, Any]),
    (Unfreeze, [Denied, Any, Denied, Denied, Any, Any]),
    (Close, [Own, Denied, Denied, Denied, Any, Any]),
    (
        SetOverdraftLimit,
        [Denied, Denied, Denied, Denied, Any, Any],
    ),
    (ChangeHolder, [Own, Denied, Denied, Denied, Any, Any]),
    (EraseOwner, [Denied, Denied, Denied, Denied, Denied, Any]),
    (ReadAccountStatus, [Own, Any, Any, Denied, Any, Any]),
    (ReadAccount, [Own, Denied, Any, Denied, Any, Any]),
    (ReadTransactions, [Own, Denied, Any, Denied, Any, Any]),
    (Audit, [Denied, Denied, Any, Denied, Denied, Any]),
    (ExportEvents, [Denied, Denied, Any, Any, Denied, Any]),
    (Admin, [Denied, Denied, Denied, Denied, Denied, Any]),
];

/// What `role` may do for `action`.
pub fn access(role: Role, action: Action) -> Access {
    let column = Role::ALL.iter().position(|r| *r == role).unwrap_or(0);
    MATRIX
        .iter()
        .find(|(a, _)| *a == action)
        .map_or(Denied, |(_, row)| row[column])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_row() {
        let all = [
            OpenAccount,
            Deposit,
            Withdraw,
            Transfer,
            Freeze,
            Unfreeze,
            Close,
            SetOverdraftLimit,
            ChangeHolder,
            EraseOwner,
            ReadAccountStatus,
            ReadAccount,
            ReadTransactions,
            Audit,
            ExportEvents,
            Admin,
        ];
        for action in all {
            assert!(
                MATRIX.iter().any(|(a, _)| *a == action),
                "{action:?} has no row"
            );
        }
    }

    #[test]
    fn the_matrix_reads_back_as_designed() {
        assert_eq!(access(Role::Customer, Deposit), Denied);
        assert_eq!(access(Role::Customer, SetOverdraftLimit), Denied);
        assert_eq!(access(Role::Service, SetOverdraftLimit), Any);
        assert_eq!(access(Role::Support, Freeze), Any);
        assert_eq!(access(Role::Support, ReadAccount), Denied);
        assert_eq!(access(Role::Support, ReadAccountStatus), Any);
        assert_eq!(access(Role::Auditor, Deposit), Denied);
        assert_eq!(access(Role::Auditor, Audit), Any);
        assert_eq!(access(Role::Analyst, ReadAccount), Denied);
        assert_eq!(access(Role::Analyst, ExportEvents), Any);
        assert_eq!(access(Role::Service, Admin), Denied);
        for action in [OpenAccount, Withdraw, Audit, Admin, ExportEvents] {
            assert_eq!(access(Role::Admin, action), Any);
        }
    }
}
