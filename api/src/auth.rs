//! Authentication: `Authorization: Bearer <JWT>` (HS256, claims `sub`, `role`, `exp`).
//!
//! [`JwtKeys`] verifies and mints tokens (`logbook token` uses the same key); the [`Principal`]
//! extractor authenticates a request or rejects it with 401 problem+json.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use logbook_events::Secret;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::problem::ApiError;

/// The roles of DESIGN.md §7.
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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    exp: i64,
    iat: i64,
}

/// Who is calling: the verified `sub` and `role` of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
}

impl Principal {
    /// The actor written into the events this principal causes.
    pub fn actor(&self) -> logbook_events::Actor {
        logbook_events::Actor {
            sub: self.sub.clone(),
            role: self.role.as_str().to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    #[error("cannot sign token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The signing and verification keys.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(***)")
    }
}

/// Clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;

impl JwtKeys {
    pub fn hs256(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// A token for `sub` with `role`, valid for `ttl_seconds` from `now`.
    pub fn mint(
        &self,
        sub: &str,
        role: Role,
        ttl_seconds: i64,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            sub: sub.to_string(),
            role,
            iat: now.timestamp(),
            exp: now.timestamp() + ttl_seconds,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AuthError::Sign)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(AuthError::Invalid)?;
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

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.jwt.authenticate(header).map_err(|error| {
            tracing::info!(target: "logbook::security", %error, path = %parts.uri.path(), "authentication failed");
            ApiError::Unauthorized
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
