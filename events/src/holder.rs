//! The account holder's personal data as the log carries it: sealed, never in plain text.
//!
//! [`SealedHolder`] holds one sealed value per personal field (name, email, postal address,
//! date of birth). A sealed value is `enc1.<key id>.<base64url of nonce, ciphertext and tag>`:
//! the gateway encrypts every field with the owner's data key before the command is produced,
//! so the commands and events topics, the read models, exports and backups only ever carry this
//! form. This crate does no cryptography: it only knows the shape, so that the processor can
//! refuse a value that is not sealed (a plain-text name sent straight to the commands topic).

use serde::{Deserialize, Serialize};

/// Prefix of every sealed value (format version 1).
pub const SEALED_PREFIX: &str = "enc1.";
/// Longest sealed value, in bytes (a 500-byte address sealed is well under 1 KiB).
pub const MAX_SEALED_BYTES: usize = 2048;

/// The personal fields of an account holder, each sealed; `None` means "not given" (in
/// `HolderChanged`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedHolder {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
}

/// The field names of [`SealedHolder`], in order (also the associated data of their sealing).
pub const HOLDER_FIELDS: [&str; 4] = ["name", "email", "address", "birth_date"];

impl SealedHolder {
    /// The fields as `(name, value)`, in [`HOLDER_FIELDS`] order.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("name", self.name.as_deref()),
            ("email", self.email.as_deref()),
            ("address", self.address.as_deref()),
            ("birth_date", self.birth_date.as_deref()),
        ]
    }

    /// The field called `name`, for writing.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "name" => Some(&mut self.name),
            "email" => Some(&mut self.email),
            "address" => Some(&mut self.address),
            "birth_date" => Some(&mut self.birth_date),
            _ => None,
        }
    }

    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, value)| value.is_none())
    }

    /// This holder with the fields `change` gives replaced.
    pub fn merged(&self, change: &SealedHolder) -> SealedHolder {
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or(old.clone());
        SealedHolder {
            name: pick(&change.name, &self.name),
            email: pick(&change.email, &self.email),
            address: pick(&change.address, &self.address),
            birth_date: pick(&change.birth_date, &self.birth_date),
        }
    }

    /// The first field whose value is not a well-formed sealed value, if any.
    pub fn first_unsealed(&self) -> Option<&'static str> {
        self.fields()
            .into_iter()
            .find(|(_, value)| value.is_some_and(|v| !looks_sealed(v)))
            .map(|(name, _)| name)
    }
}

/// Whether `value` has the shape of a sealed value: the prefix, a key id of hex digits and
/// dashes, and base64url text, within [`MAX_SEALED_BYTES`].
pub fn looks_sealed(value: &str) -> bool {
    let Some(rest) = value.strip_prefix(SEALED_PREFIX) else {
        return false;
    };
    let Some((key_id, body)) = rest.split_once('.') else {
        return false;
    };
    value.len() <= MAX_SEALED_BYTES
        && !key_id.is_empty()
        && key_id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && body.len() >= 16
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEALED: &str =
        "enc1.0193a5c2-7d1e-7c3a-9f00-000000000001.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn only_sealed_values_pass() {
        assert!(looks_sealed(SEALED));
        assert!(!looks_sealed("Alice Example"));
        assert!(!looks_sealed("enc1.zz.AAAAAAAAAAAAAAAAAAAA"));
        assert!(!looks_sealed("enc1.ab.short"));
        assert!(!looks_sealed("enc1.ab.AAAAAAAAAAAAAAAA AAAA"));
        let holder = SealedHolder {
            name: Some(SEALED.into()),
            email: Some("alice@example.com".into()),
            ..SealedHolder::default()
        };
        assert_eq!(holder.first_unsealed(), Some("email"));
    }

    #[test]
    fn a_change_replaces_only_the_fields_it_gives() {
        let old = SealedHolder {
            name: Some("a".into()),
            email: Some("b".into()),
            ..SealedHolder::default()
        };
        let change = SealedHolder {
            email: Some("c".into()),
            ..SealedHolder::default()
        };
        let merged = old.merged(&change);
        assert_eq!(merged.name.as_deref(), Some("a"));
        assert_eq!(merged.email.as_deref(), Some("c"));
        assert!(merged.address.is_none());
        assert!(!merged.is_empty() && SealedHolder::default().is_empty());
    }
}
