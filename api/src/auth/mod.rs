//! Authentication: `Authorization: Bearer <JWT>` (HS256, RS256 or ES256; claims `sub`, `role`,
//! `exp`, and `nbf`, `iss`, `aud` when present or configured).
//!
//! [`JwtKeys`] verifies and mints tokens (`logbook token` uses the same key); the
//! [`authenticate`] middleware verifies a request's token once ([`Authentication`]); the
//! [`Principal`] extractor hands the principal to a handler or rejects the request with 401
//! problem+json. [`JwtOptions`]: how tokens are verified besides the key.

mod keys;
mod options;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub use crate::policy::Role;
use crate::problem::ApiError;
pub use keys::JwtKeys;
pub use options::{JwtAlgorithm, JwtOptions, MAX_LEEWAY_SECONDS, MIN_HS256_SECRET_BYTES};

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
    #[error("no private key configured to sign {0:?} tokens")]
    NoSigningKey(JwtAlgorithm),
    #[error("JWT key configuration: {0}")]
    Config(String),
    #[error("token lifetime of {0} s is longer than the {1} s allowed")]
    Lifetime(i64, u64),
}

impl AuthError {
    /// Why a token failed, in a few stable words, without any of the token itself.
    pub fn detail(&self) -> String {
        use jsonwebtoken::errors::ErrorKind;
        let AuthError::Invalid(e) = self else {
            return self.to_string();
        };
        let reason = match e.kind() {
            ErrorKind::ExpiredSignature => "expired",
            ErrorKind::ImmatureSignature => "not valid yet (nbf)",
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::InvalidAlgorithm => "wrong algorithm",
            ErrorKind::InvalidAudience => "wrong audience",
            ErrorKind::InvalidIssuer => "wrong issuer",
            ErrorKind::MissingRequiredClaim(_) => "missing claim",
            ErrorKind::Json(_) => "malformed token or unsupported algorithm",
            _ => "malformed token",
        };
        format!("invalid token: {reason}")
    }
}

/// What [`authenticate`] found in a request's `Authorization` header, as a request extension:
/// the principal, or why there is none (a few words, never the token). The token is verified
/// once per request; the [`Principal`] extractor, the rate limiter, the Idempotency-Key store
/// and the security trail read this.
#[derive(Debug, Clone)]
pub struct Authentication(pub Result<Principal, String>);

impl Authentication {
    /// The request's authentication (anonymous when the middleware did not run).
    pub fn of(extensions: &axum::http::Extensions) -> Result<&Principal, &str> {
        match extensions.get::<Authentication>() {
            Some(Authentication(outcome)) => outcome.as_ref().map_err(String::as_str),
            None => Err("not authenticated"),
        }
    }
}

/// Middleware on `/v1`: verifies the bearer token once and records the outcome
/// ([`Authentication`]) for everything after it.
pub async fn authenticate(
    axum::extract::State(keys): axum::extract::State<Arc<JwtKeys>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let outcome = keys.authenticate(header).map_err(|error| error.detail());
    request.extensions_mut().insert(Authentication(outcome));
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Authentication::of(&parts.extensions)
            .cloned()
            .map_err(|error| {
                tracing::info!(target: "logbook::security", error, path = %parts.uri.path(), "authentication failed");
                ApiError::Unauthorized
            })
    }
}
