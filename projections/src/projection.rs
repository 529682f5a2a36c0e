//! Which projections exist, which tables each owns, and where a run writes ([`Sink`]).
//!
//! A projection is a fold of the whole events topic into its own tables, with its own consumer
//! group and its own rows in `projection_offsets`. `ledger` serves the account queries;
//! `archive` keeps every envelope for audit and export. A rebuild writes the same fold into
//! shadow tables (`<table>__rebuild`) under the offsets key `<name>__rebuild`, then swaps.

use std::borrow::Cow;
use std::fmt;

/// Suffix of the shadow tables and offsets key of a rebuild.
pub const SHADOW_SUFFIX: &str = "__rebuild";

/// A read model kept up to date from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projection {
    /// `accounts`, `account_transactions`, `transfers`.
    Ledger,
    /// `event_archive`.
    Archive,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::Ledger, Projection::Archive];

    /// The stable name used in `projection_offsets`, metrics, group ids and the admin API.
    pub fn name(&self) -> &'static str {
        match self {
            Projection::Ledger => "ledger",
            Projection::Archive => "archive",
        }
    }

    /// The projection called `name`, if any.
    pub fn parse(name: &str) -> Option<Projection> {
        Projection::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables this projection owns (and a rebuild swaps).
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            Projection::Ledger => &["accounts", "account_transactions", "transfers"],
            Projection::Archive => &["event_archive"],
        }
    }

    /// The tables a rebuild only appends to, by `COPY`, and never reads back or upserts: the
    /// lines and the archive rows, one per event at a position of its own. Their primary keys
    /// can wait until the replay is over (see [`crate::rebuild::indexes`]).
    pub fn appended_tables(&self) -> &'static [&'static str] {
        match self {
            Projection::Ledger => &["account_transactions"],
            Projection::Archive => &["event_archive"],
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Live tables, or the shadow tables a rebuild fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Live,
    Shadow,
}

/// Where one projector run writes: a projection and its live or shadow tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sink {
    pub projection: Projection,
    pub target: Target,
}

impl Sink {
    pub fn live(projection: Projection) -> Sink {
        Sink {
            projection,
            target: Target::Live,
        }
    }

    pub fn shadow(projection: Projection) -> Sink {
        Sink {
            projection,
            target: Target::Shadow,
        }
    }

    /// The physical name of one of the projection's tables. Only names from
    /// [`Projection::tables`] reach SQL this way, never input.
    pub fn table(&self, base: &'static str) -> Cow<'static, str> {
        match self.target {
            Target::Live => Cow::Borrowed(base),
            Target::Shadow => Cow::Owned(format!("{base}{SHADOW_SUFFIX}")),
        }
    }

    /// The `projection` value of this run's rows in `projection_offsets`.
    pub fn offsets_key(&self) -> Cow<'static, str> {
        self.table(self.projection.name())
    }
}

/// Counts of one applied batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events applied.
    pub applied: usize,
    /// Events already in the read model (a replay), left alone.
    pub duplicates: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for projection in Projection::ALL {
            assert_eq!(Projection::parse(projection.name()), Some(projection));
        }
        assert_eq!(Projection::parse("nope"), None);
    }

    #[test]
    fn shadow_sinks_rename_tables_and_offsets() {
        let live = Sink::live(Projection::Ledger);
        let shadow = Sink::shadow(Projection::Ledger);
        assert_eq!(live.table("accounts"), "accounts");
        assert_eq!(shadow.table("accounts"), "accounts__rebuild");
        assert_eq!(live.offsets_key(), "ledger");
        assert_eq!(shadow.offsets_key(), "ledger__rebuild");
    }
}
