//! The HTTP API's flags and `LOGBOOK_*` variables (`serve`, `all`): where it listens, TLS,
//! CORS, request limits, how long a request waits, rate limits, and the bearer tokens' key.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args as ClapArgs;

use super::SettingsError;
use super::security::{JwtArgs, JwtSettings, KekArgs, KekSettings, TlsArgs, TlsSettings};
use crate::limits::{LimitArgs, Limits};
use crate::ratelimit::{Quota, Quotas};

#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address the HTTP API listens on.
    #[arg(long, env = "LOGBOOK_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// How long a command request waits for its result before answering 504.
    #[arg(long, env = "LOGBOOK_COMMAND_TIMEOUT_MS", default_value_t = 10_000)]
    pub command_timeout_ms: u64,
    /// How long a query with `min_position` waits for the projection before answering 503.
    #[arg(long, env = "LOGBOOK_READ_WAIT_MS", default_value_t = 5_000)]
    pub read_wait_ms: u64,
    /// Origins allowed by CORS, comma separated; CORS is off when empty.
    #[arg(long, env = "LOGBOOK_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Requests per second per principal (every role), and the burst above it; 0 switches
    /// rate limiting off.
    #[arg(long, env = "LOGBOOK_RATE_LIMIT_PER_SECOND", default_value_t = 1000.0)]
    pub rate_limit_per_second: f64,
    #[arg(long, env = "LOGBOOK_RATE_LIMIT_BURST", default_value_t = 2000.0)]
    pub rate_limit_burst: f64,
    /// Per client IP for requests without a valid token.
    #[arg(
        long,
        env = "LOGBOOK_RATE_LIMIT_ANONYMOUS_PER_SECOND",
        default_value_t = 20.0
    )]
    pub rate_limit_anonymous_per_second: f64,
    /// Per-role overrides, e.g. `customer=50:100,service=5000:10000` (rate:burst).
    #[arg(long, env = "LOGBOOK_RATE_LIMITS", default_value = "")]
    pub rate_limits: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub kek: KekArgs,
}

/// Resolved HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    pub jwt: JwtSettings,
    pub tls: Option<TlsSettings>,
    /// Key-encryption keys of personal data; `None`: personal data is refused.
    pub kek: Option<KekSettings>,
    /// Origins allowed by CORS; empty: CORS off.
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    pub command_timeout: Duration,
    pub read_wait: Duration,
    /// None: rate limiting off.
    pub rate_limits: Option<Quotas>,
}

impl HttpArgs {
    /// The HTTP settings; the listen address is required.
    pub fn resolve(&self) -> Result<HttpSettings, SettingsError> {
        Ok(HttpSettings {
            addr: self
                .http_addr
                .ok_or(SettingsError::Missing("LOGBOOK_HTTP_ADDR"))?,
            jwt: self.jwt.resolve()?,
            tls: self.tls.tls()?,
            kek: self.kek.resolve()?,
            cors_origins: self
                .cors_origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
            limits: self.limits.resolve(),
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            read_wait: Duration::from_millis(self.read_wait_ms),
            rate_limits: self.quotas()?,
        })
    }

    fn quotas(&self) -> Result<Option<Quotas>, SettingsError> {
        if self.rate_limit_per_second <= 0.0 {
            return Ok(None);
        }
        let default = Quota {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst.max(1.0),
        };
        let anonymous_rate = self.rate_limit_anonymous_per_second.max(0.001);
        let anonymous = Quota {
            per_second: anonymous_rate,
            burst: (anonymous_rate * 2.0).max(1.0),
        };
        Quotas::parse(default, anonymous, &self.rate_limits)
            .map(Some)
            .map_err(SettingsError::RateLimits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        http: HttpArgs,
    }

    fn parse(args: &[&str]) -> Result<HttpSettings, SettingsError> {
        Cli::parse_from([&["x"], args].concat()).http.resolve()
    }

    #[test]
    fn the_address_is_required_and_cors_origins_are_split() {
        let mut unset = Cli::parse_from(["x"]).http;
        unset.http_addr = None; // whatever the environment says
        assert!(matches!(
            unset.resolve(),
            Err(SettingsError::Missing("LOGBOOK_HTTP_ADDR"))
        ));
        let http = parse(&[
            "--http-addr",
            "127.0.0.1:0",
            "--cors-origins",
            "https://a.example, https://b.example",
            "--rate-limit-per-second",
            "0",
        ])
        .expect("resolves");
        assert_eq!(
            http.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert!(http.rate_limits.is_none());
    }
}
