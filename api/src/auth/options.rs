//! How bearer tokens are verified and minted, besides the HS256 secret: the algorithm, the
//! public and private keys, the required issuer and audience, the tolerated clock skew and the
//! longest lifetime. Read from settings by [`crate::settings::security::SecurityArgs`].

use clap::ValueEnum;
use logbook_events::Secret;

/// Which signature the bearer tokens carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC with the shared secret `LOGBOOK_JWT_SECRET`.
    #[default]
    Hs256,
    /// RSA; verified with `LOGBOOK_JWT_PUBLIC_KEY`.
    Rs256,
    /// ECDSA P-256; verified with `LOGBOOK_JWT_PUBLIC_KEY`.
    Es256,
}

/// Largest clock skew that may be configured.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Shortest HS256 secret accepted: 32 bytes (256 bits, the hash's size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// How tokens are verified (and minted by `logbook token`), besides the HS256 secret.
#[derive(Debug, Clone)]
pub struct JwtOptions {
    pub algorithm: JwtAlgorithm,
    /// PEM public key (RS256, ES256).
    pub public_key: Option<String>,
    /// PEM private key (RS256, ES256): only `logbook token` needs it.
    pub private_key: Option<Secret>,
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, at most [`MAX_LEEWAY_SECONDS`].
    pub leeway_seconds: u64,
    /// Longest lifetime of a token accepted (`exp - iat`, or `exp - now` without `iat`), and
    /// minted by `logbook token`.
    pub max_lifetime_seconds: u64,
}

impl Default for JwtOptions {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256,
            public_key: None,
            private_key: None,
            issuer: None,
            audience: None,
            leeway_seconds: 30,
            max_lifetime_seconds: 86_400,
        }
    }
}
