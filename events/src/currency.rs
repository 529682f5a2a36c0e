//! ISO 4217 currency codes as a validated, copyable value type.
//!
//! A [`Currency`] is exactly three uppercase ASCII letters (`"EUR"`, `"USD"`). It
//! serializes as a plain JSON string and validates when deserialized, so a value of
//! this type is always well formed. Whether a code is *assigned* by ISO is not
//! checked here: the set changes over time and the log must stay readable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A three-letter uppercase ISO 4217 currency code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// The input was not exactly three uppercase ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency must be exactly three uppercase ASCII letters (ISO 4217), got {input:?}")]
pub struct CurrencyError {
    /// The rejected input, cut to at most 16 characters.
    pub input: String,
}

impl Currency {
    /// Parses a currency code; accepts exactly three ASCII letters `A`–`Z`.
    pub fn parse(code: &str) -> Result<Currency, CurrencyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(CurrencyError {
                input: code.chars().take(16).collect(),
            }),
        }
    }

    /// The code as a string slice, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Construction admits ASCII letters only, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl TryFrom<&str> for Currency {
    type Error = CurrencyError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_uppercase_letters() {
        let eur = Currency::parse("EUR").expect("valid");
        assert_eq!(eur.as_str(), "EUR");
        assert_eq!(eur.to_string(), "EUR");
        assert_eq!(format!("{eur:?}"), "Currency(EUR)");
        assert_eq!("USD".parse::<Currency>().expect("valid").as_str(), "USD");
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "", "EU", "EURO", "eur", "Eur", "E1R", "ÉUR", "EU ", " EUR", "€",
        ] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn error_input_is_bounded() {
        let err = Currency::parse(&"x".repeat(1000)).expect_err("invalid");
        assert_eq!(err.input.chars().count(), 16);
    }

    #[test]
    fn serde_is_a_plain_validated_string() {
        let eur = Currency::parse("EUR").expect("valid");
        assert_eq!(serde_json::to_string(&eur).expect("ser"), "\"EUR\"");
        let back: Currency = serde_json::from_str("\"EUR\"").expect("de");
        assert_eq!(back, eur);
        assert!(serde_json::from_str::<Currency>("\"eur\"").is_err());
        assert!(serde_json::from_str::<Currency>("978").is_err());
        // Escaped input decodes before validation.
        let escaped: Currency = serde_json::from_str("\"\\u0045UR\"").expect("de");
        assert_eq!(escaped, eur);
    }
}
