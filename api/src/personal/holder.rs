//! The holder's personal data at the edge: what a request gives ([`HolderInput`], checked by the
//! JSON Schema of its command first), sealing it into the [`SealedHolder`] the log carries, and
//! opening it again for a caller allowed to see it ([`HolderView`]).

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use logbook_events::{HOLDER_FIELDS, SealedHolder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::crypto::{CryptoError, DataKey, split_sealed};
use crate::auth::Role;
use crate::problem::FieldError;

/// The holder's fields as a request gives them (all optional: an update gives only what changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street, number, building: one to four lines.
    pub lines: Vec<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    pub country: String,
}

impl HolderInput {
    /// What the schema cannot say: a birth date that is a real day, not in the future and not
    /// before 1900. `pointer` is where the holder sits in the body.
    pub fn check(&self, pointer: &str, today: NaiveDate) -> Result<(), FieldError> {
        let Some(text) = &self.birth_date else {
            return Ok(());
        };
        let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) if date >= earliest && date <= today => Ok(()),
            _ => Err(FieldError::new(
                format!("{pointer}/birth_date"),
                "a date (YYYY-MM-DD) between 1900-01-01 and today",
            )),
        }
    }

    /// Seals every given field with `key`, for `command_id` on `account_id`.
    pub fn seal(
        &self,
        key: &DataKey,
        account_id: Uuid,
        command_id: Uuid,
    ) -> Result<SealedHolder, CryptoError> {
        let address = self
            .address
            .as_ref()
            .map(|a| serde_json::to_string(a).unwrap_or_default());
        let plain = [
            self.name.clone(),
            self.email.clone(),
            address,
            self.birth_date.clone(),
        ];
        let mut sealed = SealedHolder::default();
        for (field, value) in HOLDER_FIELDS.iter().zip(plain) {
            if let (Some(text), Some(slot)) = (value, sealed.field_mut(field)) {
                *slot = Some(key.seal(account_id, field, command_id, &text)?);
            }
        }
        Ok(sealed)
    }
}

/// How much of the holder a role sees (docs/security.md, "Personal data").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    All,
    NameOnly,
    Nothing,
}

impl Visibility {
    pub fn of(role: Role) -> Visibility {
        match role {
            Role::Customer | Role::Service | Role::Admin | Role::Auditor => Visibility::All,
            Role::Support => Visibility::NameOnly,
            Role::Analyst => Visibility::Nothing,
        }
    }
}

/// The holder as a caller sees it: the fields it may see, or `erased` when the owner's data
/// key is gone (then no field can be read by anyone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HolderView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// True when the holder's personal data was erased on request.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    /// True when this server cannot open personal data (no key-encryption key configured).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
}

impl HolderView {
    /// The holder of a server without a key ring: there is sealed data it cannot open.
    pub fn unavailable() -> HolderView {
        HolderView {
            unavailable: true,
            ..HolderView::default()
        }
    }
}

/// The key ids a sealed holder needs.
pub fn key_ids(holder: &SealedHolder) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = holder
        .fields()
        .iter()
        .filter_map(|(_, value)| value.and_then(split_sealed).map(|(id, _)| id))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Opens what `visibility` allows of `holder` with the keys found. A field whose key is gone
/// reads as erased; one whose key cannot be unwrapped here as unavailable; one that fails
/// authentication is logged and left out.
pub fn open(
    holder: &SealedHolder,
    account_id: Uuid,
    keys: &HashMap<Uuid, Option<DataKey>>,
    visibility: Visibility,
) -> Option<HolderView> {
    if visibility == Visibility::Nothing || holder.is_empty() {
        return None;
    }
    let mut view = HolderView::default();
    for (field, value) in holder.fields() {
        let Some(sealed) = value else { continue };
        if visibility == Visibility::NameOnly && field != "name" {
            continue;
        }
        let key = split_sealed(sealed).and_then(|(id, _)| keys.get(&id));
        let Some(key) = key else {
            view.erased = true;
            continue;
        };
        let Some(key) = key else {
            view.unavailable = true;
            continue;
        };
        match key.open(account_id, field, sealed) {
            Ok(text) => set(&mut view, field, text),
            Err(error) => {
                tracing::error!(%account_id, field, %error, "a sealed holder field did not open");
            }
        }
    }
    if view.erased {
        return Some(HolderView {
            erased: true,
            ..HolderView::default()
        });
    }
    if view.unavailable {
        return Some(HolderView::unavailable());
    }
    Some(view)
}

fn set(view: &mut HolderView, field: &str, text: String) {
    match field {
        "name" => view.name = Some(text),
        "email" => view.email = Some(text),
        "address" => view.address = serde_json::from_str(&text).ok(),
        _ => view.birth_date = Some(text),
    }
}

/// Today, for [`HolderInput::check`].
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> HolderInput {
        HolderInput {
            name: Some("Ada Lovelace".into()),
            email: Some("ada@example.org".into()),
            address: Some(Address {
                lines: vec!["12 St James's Square".into()],
                postal_code: "SW1Y 4JH".into(),
                city: "London".into(),
                country: "GB".into(),
            }),
            birth_date: Some("1815-12-10".into()),
        }
    }

    #[test]
    fn sealed_fields_open_by_role_and_read_as_erased_without_their_key() {
        let key = DataKey::new(Uuid::from_u128(1), &[4; 32]).expect("key");
        let account = Uuid::from_u128(2);
        let sealed = input()
            .seal(&key, account, Uuid::from_u128(3))
            .expect("seal");
        let text = serde_json::to_string(&sealed).expect("json");
        assert!(!text.contains("Ada") && !text.contains("London") && !text.contains("1815"));
        let keys = HashMap::from([(key.id, Some(key))]);
        let all = open(&sealed, account, &keys, Visibility::All).expect("view");
        assert_eq!(all.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(all.address, input().address);
        let support = open(&sealed, account, &keys, Visibility::NameOnly).expect("view");
        assert!(support.name.is_some() && support.email.is_none() && support.birth_date.is_none());
        assert!(open(&sealed, account, &keys, Visibility::Nothing).is_none());
        let erased = open(&sealed, account, &HashMap::new(), Visibility::All).expect("view");
        assert!(erased.erased && erased.name.is_none());
        let id = key_ids(&sealed)[0];
        let locked = open(
            &sealed,
            account,
            &HashMap::from([(id, None)]),
            Visibility::All,
        );
        assert_eq!(locked, Some(HolderView::unavailable()));
    }

    #[test]
    fn birth_dates_are_real_past_days() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        let with = |date: &str| HolderInput {
            birth_date: Some(date.into()),
            ..HolderInput::default()
        };
        assert!(with("1990-02-28").check("/holder", today).is_ok());
        assert!(with("1990-02-30").check("/holder", today).is_err());
        assert!(with("2027-01-01").check("/holder", today).is_err());
        assert!(with("1899-12-31").check("/holder", today).is_err());
    }
}
