//! Security at the edge, besides authentication ([`crate::auth`]) and the role matrix
//! ([`crate::policy`]):
//!
//! - [`tls`]: HTTPS with rustls when a certificate and key are configured;
//! - [`headers`]: security headers on every response, and CORS only when configured;
//! - [`trail`]: the security audit trail (authentication failures, denials, rate limits,
//!   admin actions), written to PostgreSQL and queried by auditors (`crate::routes::security_trail`); [`prune`]
//!   removes rows past the retention age.

pub mod headers;
pub mod prune;
pub mod tls;
pub mod trail;
