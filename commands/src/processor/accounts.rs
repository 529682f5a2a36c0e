//! The accounts of one partition as the processor holds them, densely: the slots side by side
//! in one vector, found through a hash index of 4-byte positions.
//!
//! A `HashMap<Uuid, Slot>` stores each account's id twice (key and slot) and leaves whole
//! slots empty between its growth steps (a hash table is between 44% and 87% full); here only
//! the 4-byte positions sit in the table, and the vector is trimmed once a partition is
//! restored. The index hashes with a random key per process (SipHash), so account ids chosen
//! by callers cannot be made to collide.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use uuid::Uuid;

use super::state::Slot;

/// The accounts of one partition, by id.
#[derive(Debug, Default)]
pub struct Accounts {
    slots: Vec<Slot>,
    index: HashTable<u32>,
    hasher: RandomState,
}

impl Accounts {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every account, in the order they were first seen.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Slot> {
        self.slots.iter()
    }

    fn position(&self, id: &Uuid) -> Option<usize> {
        let hash = self.hasher.hash_one(id);
        self.index
            .find(hash, |&at| self.slots[at as usize].account.id() == *id)
            .map(|&at| at as usize)
    }

    pub fn get(&self, id: &Uuid) -> Option<&Slot> {
        self.position(id).map(|at| &self.slots[at])
    }

    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut Slot> {
        self.position(id).map(|at| &mut self.slots[at])
    }

    /// The account `id`, added as not opened yet if it is new.
    pub fn get_or_insert(&mut self, id: Uuid) -> &mut Slot {
        let at = match self.position(&id) {
            Some(at) => at,
            None => self.push(Slot::new(id)),
        };
        &mut self.slots[at]
    }

    /// Puts `slot` in place of the account with its id (or adds it).
    pub fn insert(&mut self, slot: Slot) {
        match self.position(&slot.account.id()) {
            Some(at) => self.slots[at] = slot,
            None => {
                self.push(slot);
            }
        }
    }

    fn push(&mut self, slot: Slot) -> usize {
        let at = self.slots.len();
        // 2^32 accounts of one partition would take hundreds of GB before this is reached
        let position = u32::try_from(at).expect("fewer than 2^32 accounts in a partition");
        let hash = self.hasher.hash_one(slot.account.id());
        self.slots.push(slot);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, position, |&other| {
            hasher.hash_one(slots[other as usize].account.id())
        });
        at
    }

    /// Gives back the room the growth of the vector and the index left over (after a restore).
    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .shrink_to_fit(|&at| hasher.hash_one(slots[at as usize].account.id()));
    }

    /// Bytes this store holds for its accounts (not counting owner ids and transfer books).
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            // a table of n buckets holds 7/8 n entries; each bucket has a control byte
            + self.index.capacity().next_power_of_two() * (std::mem::size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_found_by_id_and_replaced_in_place() {
        let mut accounts = Accounts::default();
        let ids: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            accounts.get_or_insert(*id).last_hash = [1; 32];
        }
        assert_eq!(accounts.len(), 1000);
        for id in &ids {
            assert_eq!(accounts.get(id).expect("found").account.id(), *id);
        }
        assert!(accounts.get(&Uuid::new_v4()).is_none());
        let mut replaced = Slot::new(ids[7]);
        replaced.last_hash = [2; 32];
        accounts.insert(replaced);
        assert_eq!(accounts.len(), 1000);
        assert_eq!(accounts.get(&ids[7]).expect("found").last_hash, [2; 32]);
        accounts.get_mut(&ids[8]).expect("found").last_hash = [3; 32];
        accounts.shrink_to_fit();
        assert_eq!(accounts.get(&ids[8]).expect("found").last_hash, [3; 32]);
        assert_eq!(accounts.get_or_insert(ids[9]).last_hash, [1; 32]);
    }

    #[test]
    fn a_slot_is_the_account_and_its_hash_without_padding() {
        assert_eq!(std::mem::size_of::<crate::domain::Account>(), 72);
        assert_eq!(std::mem::size_of::<Slot>(), 104);
    }

    #[test]
    fn a_restored_account_costs_little_more_than_its_slot() {
        let mut accounts = Accounts::default();
        for _ in 0..10_000 {
            accounts.get_or_insert(Uuid::new_v4());
        }
        accounts.shrink_to_fit();
        let per_account = accounts.allocated_bytes() / accounts.len();
        // the slot itself, plus at most ~2.3 index entries of 5 bytes (a table is ≥ 44% full)
        assert!(
            per_account <= std::mem::size_of::<Slot>() + 12,
            "{per_account} bytes per account"
        );
    }
}
