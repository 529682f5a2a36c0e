//! The cryptography of personal data: key-encryption keys ([`KeyRing`]) that wrap the owners'
//! data keys, and data keys ([`DataKey`]) that seal and open single field values.
//!
//! Both use AES-256-GCM (ring). A wrapped data key is `nonce ‖ ciphertext ‖ tag` with the owner
//! id and key id as associated data, so a wrapped key cannot be moved to another owner. A sealed
//! value is `enc1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>` with the account id and field
//! name as associated data, so a value cannot be moved to another account or field.
//!
//! Sealing is deterministic for one command: the nonce is an HMAC (keyed from the data key) of
//! the account, field, command id and plain text. A retried command (same id) therefore seals to
//! the same bytes and the processor recognises it as the same command, while different texts or
//! commands never share a nonce.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use logbook_events::holder::SEALED_PREFIX;

/// Length of every key here: 256 bits.
pub const KEY_LEN: usize = 32;

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("a key-encryption key must be 32 bytes in base64 ({0})")]
    BadKek(String),
    #[error("the data key is wrapped by key-encryption key {0}, which is not configured")]
    UnknownKek(String),
    #[error("a wrapped key or sealed value failed authentication")]
    Unauthentic,
    #[error("not a sealed value")]
    NotSealed,
    #[error("the system random source failed")]
    Random,
}

/// Key-encryption keys: the current one (wraps new keys) and older ones (only unwrap, until
/// `logbook keys rotate` has rewrapped everything under the current one). A key is named by its
/// fingerprint, so nothing but the keys themselves is configured.
pub struct KeyRing {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("kek_ids", &ids).finish()
    }
}

impl KeyRing {
    /// From raw keys, the current one first.
    pub fn new(keys: &[[u8; KEY_LEN]]) -> Result<KeyRing, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::BadKek("none given".into()));
        }
        let keys = keys
            .iter()
            .map(|raw| Ok((fingerprint(raw), aead_key(raw)?)))
            .collect::<Result<_, CryptoError>>()?;
        Ok(KeyRing { keys })
    }

    /// The current key's id (what new wrappings record).
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Wraps `data_key` of `owner_id` under the current key.
    pub fn wrap(
        &self,
        owner_id: &str,
        key_id: Uuid,
        data_key: &[u8; KEY_LEN],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut out = data_key.to_vec();
        self.keys[0]
            .1
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(owner_id, key_id)),
                &mut out,
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        Ok([nonce.as_slice(), &out].concat())
    }

    /// Unwraps a data key wrapped by the key named `kek_id`.
    pub fn unwrap(
        &self,
        kek_id: &str,
        owner_id: &str,
        key_id: Uuid,
        wrapped: &[u8],
    ) -> Result<[u8; KEY_LEN], CryptoError> {
        let (_, kek) = self
            .keys
            .iter()
            .find(|(id, _)| id == kek_id)
            .ok_or_else(|| CryptoError::UnknownKek(kek_id.to_owned()))?;
        let opened = open(kek, wrapped, wrap_aad(owner_id, key_id))?;
        opened.try_into().map_err(|_| CryptoError::Unauthentic)
    }
}

/// Reads a key-encryption key: 32 bytes in standard or URL-safe base64.
pub fn parse_kek(text: &str) -> Result<[u8; KEY_LEN], CryptoError> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| CryptoError::BadKek("not base64".into()))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| CryptoError::BadKek(format!("{} bytes", b.len())))
}

/// A fresh random data key.
pub fn random_key() -> Result<[u8; KEY_LEN], CryptoError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CryptoError::Random)?;
    Ok(key)
}

/// An owner's data key, unwrapped.
pub struct DataKey {
    pub id: Uuid,
    aead: LessSafeKey,
    nonces: hmac::Key,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    pub fn new(id: Uuid, raw: &[u8; KEY_LEN]) -> Result<DataKey, CryptoError> {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, raw);
        let nonce_key = hmac::sign(&derive, b"logbook personal data nonce key v1");
        Ok(DataKey {
            id,
            aead: aead_key(raw)?,
            nonces: hmac::Key::new(hmac::HMAC_SHA256, nonce_key.as_ref()),
        })
    }

    /// Seals `plain` as the value of `field` of `account_id`, for the command `command_id`.
    pub fn seal(
        &self,
        account_id: Uuid,
        field: &str,
        command_id: Uuid,
        plain: &str,
    ) -> Result<String, CryptoError> {
        let mut context = hmac::Context::with_key(&self.nonces);
        for part in [
            account_id.as_bytes().as_slice(),
            field.as_bytes(),
            command_id.as_bytes(),
        ] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.update(plain.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&context.sign().as_ref()[..NONCE_LEN]);
        let mut out = plain.as_bytes().to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(field_aad(account_id, field)),
                &mut out,
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        let body = URL_SAFE_NO_PAD.encode([nonce.as_slice(), &out].concat());
        Ok(format!("{SEALED_PREFIX}{}.{body}", self.id))
    }

    /// Opens a value sealed by [`Self::seal`] for `field` of `account_id`.
    pub fn open(&self, account_id: Uuid, field: &str, sealed: &str) -> Result<String, CryptoError> {
        let (key_id, body) = split_sealed(sealed).ok_or(CryptoError::NotSealed)?;
        if key_id != self.id {
            return Err(CryptoError::Unauthentic);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::NotSealed)?;
        let plain = open(&self.aead, &bytes, field_aad(account_id, field))?;
        String::from_utf8(plain).map_err(|_| CryptoError::Unauthentic)
    }
}

/// The key id and body of a sealed value.
pub fn split_sealed(sealed: &str) -> Option<(Uuid, &str)> {
    let rest = sealed.strip_prefix(SEALED_PREFIX)?;
    let (key_id, body) = rest.split_once('.')?;
    Some((Uuid::parse_str(key_id).ok()?, body))
}

fn aead_key(raw: &[u8; KEY_LEN]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, raw)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::BadKek("unusable key".into()))
}

/// Opens `nonce ‖ ciphertext ‖ tag`.
fn open(key: &LessSafeKey, bytes: &[u8], aad: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
    if bytes.len() < NONCE_LEN {
        return Err(CryptoError::Unauthentic);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unauthentic)?;
    let mut buffer = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| CryptoError::Unauthentic)?;
    Ok(plain.to_vec())
}

/// The id of a key-encryption key: the first 8 bytes of its SHA-256, in hex.
fn fingerprint(raw: &[u8; KEY_LEN]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, raw);
    hex::encode(&digest.as_ref()[..8])
}

fn wrap_aad(owner_id: &str, key_id: Uuid) -> Vec<u8> {
    format!("logbook data key {key_id} of {owner_id}").into_bytes()
}

fn field_aad(account_id: Uuid, field: &str) -> Vec<u8> {
    format!("{account_id}/{field}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> [u8; KEY_LEN] {
        [byte; KEY_LEN]
    }

    #[test]
    fn sealing_is_bound_to_account_field_and_key_and_repeats_per_command() {
        let data = DataKey::new(Uuid::from_u128(1), &key(7)).expect("key");
        let (account, command) = (Uuid::from_u128(2), Uuid::from_u128(3));
        let sealed = data
            .seal(account, "name", command, "Ada Lovelace")
            .expect("seal");
        assert!(logbook_events::looks_sealed(&sealed), "{sealed}");
        assert!(!sealed.contains("Ada"));
        assert_eq!(
            data.open(account, "name", &sealed).expect("open"),
            "Ada Lovelace"
        );
        // the same command seals to the same bytes; another command does not
        assert_eq!(
            data.seal(account, "name", command, "Ada Lovelace")
                .expect("again"),
            sealed
        );
        assert_ne!(
            data.seal(account, "name", Uuid::from_u128(4), "Ada Lovelace")
                .expect("other"),
            sealed
        );
        assert!(data.open(Uuid::from_u128(9), "name", &sealed).is_err());
        assert!(data.open(account, "email", &sealed).is_err());
        let other = DataKey::new(Uuid::from_u128(1), &key(8)).expect("key");
        assert!(other.open(account, "name", &sealed).is_err());
    }

    #[test]
    fn wrapped_keys_open_with_any_configured_kek_and_only_for_their_owner() {
        let old = KeyRing::new(&[key(1)]).expect("ring");
        let id = Uuid::from_u128(5);
        let wrapped = old.wrap("alice", id, &key(9)).expect("wrap");
        let rotated = KeyRing::new(&[key(2), key(1)]).expect("ring");
        assert_ne!(rotated.current_id(), old.current_id());
        let opened = rotated
            .unwrap(old.current_id(), "alice", id, &wrapped)
            .expect("unwrap");
        assert_eq!(opened, key(9));
        assert!(
            rotated
                .unwrap(old.current_id(), "bob", id, &wrapped)
                .is_err()
        );
        let without_old = KeyRing::new(&[key(2)]).expect("ring");
        assert!(matches!(
            without_old.unwrap(old.current_id(), "alice", id, &wrapped),
            Err(CryptoError::UnknownKek(_))
        ));
    }

    #[test]
    fn keks_are_read_from_base64_of_32_bytes() {
        let text = STANDARD.encode(key(3));
        assert_eq!(parse_kek(&format!("{text}\n")).expect("reads"), key(3));
        assert!(parse_kek("c2hvcnQ=").is_err());
        assert!(parse_kek("not base64!").is_err());
    }
}
