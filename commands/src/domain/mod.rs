//! The pure account aggregate: commands, state, business rules. No I/O, no clock.
//!
//! - [`command`]: [`AccountCommand`] (what a caller asks for) and its stateless checks.
//! - [`state`]: [`Account`], the state folded from events with [`apply`].
//! - [`rules`]: [`decide`], the rules that turn a command into events or a
//!   [`DomainError`].
//! - [`error`]: [`DomainError`], its [`RejectionKind`] and stable codes.
//! - [`intent`]: fingerprints of commands, and the command an event was decided from.
//!
//! The command processor holds one [`Account`] per aggregate, calls [`decide`], and
//! on success writes the events and folds them in with [`apply`]. Because `decide`
//! only reads state and `apply` never fails on events `decide` produced, replaying
//! the log always rebuilds the state the processor had.

pub mod command;
pub mod error;
pub mod intent;
pub mod rules;
pub mod state;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use command::AccountCommand;
pub use error::{DomainError, RejectionKind};
pub use rules::{MAX_BALANCE, MAX_TRANSFERS_IN_FLIGHT, decide};
pub use state::{Account, AccountParts, AccountStatus, Transfers, apply};

/// Largest amount (and overdraft limit) in minor units: 10^15.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;
/// Longest `owner_id`, in characters (it must have at least one).
pub const MAX_OWNER_ID_CHARS: usize = 128;
/// Longest `reference`, in characters.
pub const MAX_REFERENCE_CHARS: usize = 140;
/// Longest `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 500;
