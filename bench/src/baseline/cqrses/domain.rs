//! The account domain on `cqrs-es`: the same rules as Logbook's (open once, positive amounts,
//! no balance below `-overdraft_limit`), with the decision kept in a pure function.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent, EventEnvelope, View};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum AccountCommand {
    Open {
        owner_id: String,
        currency: String,
        overdraft_limit: i64,
    },
    /// A signed change: deposit (> 0) or withdrawal (< 0), or a transfer leg.
    Post {
        amount: i64,
        reference: Option<String>,
        transfer_id: Option<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened {
        owner_id: String,
        currency: String,
        overdraft_limit: i64,
    },
    Posted {
        amount: i64,
        balance_after: i64,
        reference: Option<String>,
        transfer_id: Option<Uuid>,
    },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            AccountEvent::Opened { .. } => "AccountOpened".to_owned(),
            AccountEvent::Posted { .. } => "FundsPosted".to_owned(),
        }
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("unknown account")]
    NotFound,
    #[error("the account exists already")]
    AlreadyOpen,
    #[error("insufficient funds")]
    InsufficientFunds,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Account {
    opened: bool,
    balance: i64,
    overdraft_limit: i64,
}

/// The pure decision: the event a command leads to, or why it is refused.
pub fn decide(account: &Account, command: AccountCommand) -> Result<AccountEvent, AccountError> {
    match command {
        AccountCommand::Open { .. } if account.opened => Err(AccountError::AlreadyOpen),
        AccountCommand::Open {
            owner_id,
            currency,
            overdraft_limit,
        } => Ok(AccountEvent::Opened {
            owner_id,
            currency,
            overdraft_limit,
        }),
        AccountCommand::Post { .. } if !account.opened => Err(AccountError::NotFound),
        AccountCommand::Post {
            amount,
            reference,
            transfer_id,
        } => {
            let balance_after = account.balance + amount;
            if balance_after < -account.overdraft_limit {
                return Err(AccountError::InsufficientFunds);
            }
            Ok(AccountEvent::Posted {
                amount,
                balance_after,
                reference,
                transfer_id,
            })
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: AccountCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), AccountError> {
        let event = decide(self, command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: AccountEvent) {
        match event {
            AccountEvent::Opened {
                overdraft_limit, ..
            } => {
                self.opened = true;
                self.overdraft_limit = overdraft_limit;
            }
            AccountEvent::Posted { balance_after, .. } => self.balance = balance_after,
        }
    }
}

/// The read model: what GET /v1/accounts/{id} answers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub owner_id: String,
    pub currency: String,
    pub balance: i64,
    pub version: usize,
}

impl View<Account> for AccountView {
    fn update(&mut self, event: &EventEnvelope<Account>) {
        self.version = event.sequence;
        match &event.payload {
            AccountEvent::Opened {
                owner_id, currency, ..
            } => {
                self.owner_id.clone_from(owner_id);
                self.currency.clone_from(currency);
            }
            AccountEvent::Posted { balance_after, .. } => self.balance = *balance_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(amount: i64) -> AccountCommand {
        AccountCommand::Post {
            amount,
            reference: None,
            transfer_id: None,
        }
    }

    #[test]
    fn the_rules_hold() {
        let mut account = Account::default();
        assert_eq!(decide(&account, post(5)), Err(AccountError::NotFound));
        let open = AccountCommand::Open {
            owner_id: "o".into(),
            currency: "EUR".into(),
            overdraft_limit: 10,
        };
        let opened = decide(&account, open.clone()).expect("opens");
        account.apply(opened);
        assert_eq!(decide(&account, open), Err(AccountError::AlreadyOpen));
        account.apply(decide(&account, post(-10)).expect("within the overdraft"));
        assert_eq!(account.balance, -10);
        assert_eq!(
            decide(&account, post(-1)),
            Err(AccountError::InsufficientFunds)
        );
    }
}
