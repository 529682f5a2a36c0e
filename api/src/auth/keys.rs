//! Token keys: [`JwtKeys`] verifies bearer tokens (HS256 with the shared secret, RS256 or
//! ES256 with the public key) and mints them (`logbook token`) with the same key, bounding
//! every token's lifetime.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use logbook_events::Secret;
use serde::{Deserialize, Serialize};

use super::options::{JwtAlgorithm, JwtOptions, MAX_LEEWAY_SECONDS, MIN_HS256_SECRET_BYTES};
use super::{AuthError, Principal, Role};

/// What `logbook token` signs.
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    role: Role,
    exp: i64,
    iat: i64,
    nbf: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// What a verified token must carry (`exp`, `nbf`, `iss`, `aud` are checked by the validation;
/// the lifetime by [`JwtKeys::verify`]).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
}

/// The verification key (and the signing key, when this process has one).
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    max_lifetime_seconds: u64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(***)")
    }
}

impl JwtKeys {
    /// HS256 with `secret` and the default options (tests, local use).
    pub fn hs256(secret: &Secret) -> Self {
        Self::hmac(secret, &JwtOptions::default())
    }

    /// The keys the settings describe: the HS256 secret, or the RS256/ES256 PEM keys.
    pub fn from_settings(secret: Option<&Secret>, options: &JwtOptions) -> Result<Self, AuthError> {
        let config = |what: &str| AuthError::Config(what.to_string());
        match options.algorithm {
            JwtAlgorithm::Hs256 => {
                let secret =
                    secret.ok_or_else(|| config("HS256 needs LOGBOOK_JWT_SECRET(_FILE)"))?;
                if secret.expose().len() < MIN_HS256_SECRET_BYTES {
                    return Err(AuthError::Config(format!(
                        "LOGBOOK_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes \
                         (e.g. openssl rand -hex 32)"
                    )));
                }
                Ok(Self::hmac(secret, options))
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                let public = options
                    .public_key
                    .as_deref()
                    .ok_or_else(|| config("RS256/ES256 need LOGBOOK_JWT_PUBLIC_KEY(_FILE)"))?;
                Self::asymmetric(public, options.private_key.as_ref(), options)
            }
        }
    }

    fn hmac(secret: &Secret, options: &JwtOptions) -> Self {
        let bytes = secret.expose().as_bytes();
        Self::assemble(
            Algorithm::HS256,
            Some(EncodingKey::from_secret(bytes)),
            DecodingKey::from_secret(bytes),
            options,
        )
    }

    fn asymmetric(
        public: &str,
        private: Option<&Secret>,
        options: &JwtOptions,
    ) -> Result<Self, AuthError> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::Config(e.to_string());
        let (algorithm, decoding, encoding) = match options.algorithm {
            JwtAlgorithm::Rs256 => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(public.as_bytes()).map_err(bad)?,
                private
                    .map(|k| EncodingKey::from_rsa_pem(k.expose().as_bytes()))
                    .transpose()
                    .map_err(bad)?,
            ),
            _ => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(public.as_bytes()).map_err(bad)?,
                private
                    .map(|k| EncodingKey::from_ec_pem(k.expose().as_bytes()))
                    .transpose()
                    .map_err(bad)?,
            ),
        };
        Ok(Self::assemble(algorithm, encoding, decoding, options))
    }

    fn assemble(
        algorithm: Algorithm,
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
        options: &JwtOptions,
    ) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = options.leeway_seconds.min(MAX_LEEWAY_SECONDS);
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        required.extend(options.issuer.as_ref().map(|_| "iss"));
        required.extend(options.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &options.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &options.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Self {
            algorithm,
            encoding,
            decoding,
            validation,
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
            max_lifetime_seconds: options.max_lifetime_seconds,
        }
    }

    /// A token for `sub` with `role`, valid for `ttl_seconds` from `now`, with the configured
    /// issuer and audience.
    pub fn mint(
        &self,
        sub: &str,
        role: Role,
        ttl_seconds: i64,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let encoding =
            self.encoding
                .as_ref()
                .ok_or(AuthError::NoSigningKey(match self.algorithm {
                    Algorithm::RS256 => JwtAlgorithm::Rs256,
                    Algorithm::ES256 => JwtAlgorithm::Es256,
                    _ => JwtAlgorithm::Hs256,
                }))?;
        if ttl_seconds > self.max_lifetime_seconds as i64 {
            return Err(AuthError::Lifetime(ttl_seconds, self.max_lifetime_seconds));
        }
        let claims = MintedClaims {
            sub,
            role,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + ttl_seconds,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        encode(&Header::new(self.algorithm), &claims, encoding).map_err(AuthError::Sign)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(AuthError::Invalid)?;
        let start = data.claims.iat.unwrap_or_else(|| Utc::now().timestamp());
        let lifetime = data.claims.exp.saturating_sub(start);
        let allowed = self.max_lifetime_seconds + self.validation.leeway;
        if lifetime > allowed as i64 {
            return Err(AuthError::Lifetime(lifetime, self.max_lifetime_seconds));
        }
        Ok(Principal {
            sub: data.claims.sub,
            role: data.claims.role,
        })
    }

    /// Verifies an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hs256_secrets_are_refused_and_lifetimes_are_bounded() {
        let short = Secret::new("x".repeat(MIN_HS256_SECRET_BYTES - 1));
        let refused = JwtKeys::from_settings(Some(&short), &JwtOptions::default());
        assert!(matches!(refused, Err(AuthError::Config(_))), "{refused:?}");
        let options = JwtOptions {
            max_lifetime_seconds: 600,
            ..JwtOptions::default()
        };
        let secret = Secret::new("k".repeat(MIN_HS256_SECRET_BYTES));
        let keys = JwtKeys::from_settings(Some(&secret), &options).expect("keys");
        assert!(matches!(
            keys.mint("a", Role::Admin, 601, Utc::now()),
            Err(AuthError::Lifetime(..))
        ));
        // a token minted elsewhere for longer than allowed is refused
        let lenient = JwtKeys::hs256(&secret);
        let long = lenient
            .mint("a", Role::Admin, 7200, Utc::now())
            .expect("mints");
        assert!(matches!(keys.verify(&long), Err(AuthError::Lifetime(..))));
        let fine = keys.mint("a", Role::Admin, 600, Utc::now()).expect("mints");
        assert!(keys.verify(&fine).is_ok());
    }

    #[test]
    fn minted_tokens_verify_and_expired_or_foreign_ones_do_not() {
        let keys = JwtKeys::hs256(&Secret::new("test-secret-one"));
        let now = Utc::now();
        let token = keys.mint("alice", Role::Customer, 60, now).expect("mints");
        let principal = keys
            .authenticate(Some(&format!("Bearer {token}")))
            .expect("verifies");
        assert_eq!(
            principal,
            Principal {
                sub: "alice".into(),
                role: Role::Customer
            }
        );

        let old = keys.mint(
            "alice",
            Role::Customer,
            60,
            now - chrono::Duration::hours(1),
        );
        assert!(
            keys.verify(&old.expect("mints")).is_err(),
            "expired token accepted"
        );

        let other = JwtKeys::hs256(&Secret::new("another-secret"));
        assert!(
            other.verify(&token).is_err(),
            "token of another key accepted"
        );
        assert!(matches!(keys.authenticate(None), Err(AuthError::Missing)));
        assert!(keys.authenticate(Some("Basic abc")).is_err());
    }

    fn options(algorithm: JwtAlgorithm, public: String, private: String) -> JwtOptions {
        JwtOptions {
            algorithm,
            public_key: Some(public),
            private_key: Some(Secret::new(private)),
            issuer: Some("https://idp.example".into()),
            audience: Some("logbook".into()),
            ..JwtOptions::default()
        }
    }

    fn round_trip_and_foreign_audience(options: JwtOptions) {
        let keys = JwtKeys::from_settings(None, &options).expect("keys");
        let token = keys
            .mint("svc", Role::Service, 60, Utc::now())
            .expect("mints");
        assert_eq!(keys.verify(&token).expect("verifies").role, Role::Service);
        let elsewhere = JwtKeys::from_settings(
            None,
            &JwtOptions {
                audience: Some("another-api".into()),
                ..options.clone()
            },
        )
        .expect("keys");
        assert!(
            elsewhere.verify(&token).is_err(),
            "token of another audience accepted"
        );
        let verify_only = JwtKeys::from_settings(
            None,
            &JwtOptions {
                private_key: None,
                ..options
            },
        )
        .expect("keys");
        assert!(verify_only.verify(&token).is_ok());
        assert!(matches!(
            verify_only.mint("x", Role::Admin, 60, Utc::now()),
            Err(AuthError::NoSigningKey(_))
        ));
    }

    #[test]
    fn es256_tokens_verify_with_the_public_key_only() {
        let pair = rcgen::KeyPair::generate().expect("P-256 key");
        round_trip_and_foreign_audience(options(
            JwtAlgorithm::Es256,
            pair.public_key_pem(),
            pair.serialize_pem(),
        ));
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_key_only() {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key");
        let public = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public PEM");
        let private = private.to_pkcs8_pem(LineEnding::LF).expect("private PEM");
        round_trip_and_foreign_audience(options(JwtAlgorithm::Rs256, public, private.to_string()));
    }

    #[test]
    fn issuer_not_before_and_alg_none_are_checked() {
        let secret = Secret::new("test-secret-two-long-enough-for-hs256");
        let with_issuer = JwtOptions {
            issuer: Some("https://idp.example".into()),
            ..JwtOptions::default()
        };
        let keys = JwtKeys::from_settings(Some(&secret), &with_issuer).expect("keys");
        let plain = JwtKeys::hs256(&secret);
        let no_issuer = plain
            .mint("a", Role::Customer, 60, Utc::now())
            .expect("mints");
        assert!(
            keys.verify(&no_issuer).is_err(),
            "token without iss accepted"
        );
        assert!(plain.verify(&no_issuer).is_ok());

        // nbf ten minutes ahead: beyond the leeway
        let future = plain
            .mint(
                "a",
                Role::Customer,
                3600,
                Utc::now() + chrono::Duration::minutes(10),
            )
            .expect("mints");
        assert!(
            plain.verify(&future).is_err(),
            "token before its nbf accepted"
        );

        // alg none: header {"alg":"none"}, a valid payload, no signature
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let payload = format!(
            r#"{{"sub":"a","role":"admin","exp":{}}}"#,
            Utc::now().timestamp() + 600
        );
        let unsigned = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(payload.as_bytes())
        );
        assert!(plain.verify(&unsigned).is_err(), "alg none accepted");
    }
}
