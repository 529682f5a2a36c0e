//! Security flags and `LOGBOOK_*` variables: the JWT algorithm and keys, TLS, CORS.
//!
//! Flattened into [`crate::settings::Args`]; [`SecurityArgs::resolve`] reads the `*_FILE`
//! forms once and yields [`JwtOptions`], an optional [`TlsSettings`] and the CORS origins.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use logbook_events::Secret;

use crate::auth::{JwtAlgorithm, JwtOptions, MAX_LEEWAY_SECONDS};
use crate::settings::SettingsError;

/// The certificate chain and key of the HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_pem: String,
    pub key_pem: Secret,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct SecurityArgs {
    /// Signature algorithm of the bearer tokens.
    #[arg(long, env = "LOGBOOK_JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::Hs256, global = true)]
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM public key for RS256/ES256 (value or file).
    #[arg(long, env = "LOGBOOK_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, only to mint tokens with `logbook token`.
    #[arg(
        long,
        env = "LOGBOOK_JWT_PRIVATE_KEY",
        global = true,
        hide_env_values = true
    )]
    pub jwt_private_key: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_PRIVATE_KEY_FILE", global = true)]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "LOGBOOK_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "LOGBOOK_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds (at most 300).
    #[arg(
        long,
        env = "LOGBOOK_JWT_LEEWAY_SECS",
        default_value_t = 30,
        global = true
    )]
    pub jwt_leeway_secs: u64,
    /// Longest token lifetime accepted (and minted), seconds: a stolen token is worth at most
    /// this long.
    #[arg(
        long,
        env = "LOGBOOK_JWT_MAX_LIFETIME_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub jwt_max_lifetime_secs: u64,

    /// PEM certificate chain: HTTPS when set together with the key.
    #[arg(long, env = "LOGBOOK_TLS_CERT", global = true)]
    pub tls_cert: Option<String>,
    #[arg(long, env = "LOGBOOK_TLS_CERT_FILE", global = true)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "LOGBOOK_TLS_KEY", global = true, hide_env_values = true)]
    pub tls_key: Option<String>,
    #[arg(long, env = "LOGBOOK_TLS_KEY_FILE", global = true)]
    pub tls_key_file: Option<PathBuf>,

    /// Origins allowed by CORS, comma separated; CORS is off when empty.
    #[arg(long, env = "LOGBOOK_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
}

impl SecurityArgs {
    pub fn jwt_options(&self) -> Result<JwtOptions, SettingsError> {
        if self.jwt_leeway_secs > MAX_LEEWAY_SECONDS {
            return Err(SettingsError::Invalid(format!(
                "LOGBOOK_JWT_LEEWAY_SECS is at most {MAX_LEEWAY_SECONDS}"
            )));
        }
        Ok(JwtOptions {
            algorithm: self.jwt_algorithm,
            public_key: read(
                "LOGBOOK_JWT_PUBLIC_KEY",
                &self.jwt_public_key,
                &self.jwt_public_key_file,
            )?,
            private_key: read(
                "LOGBOOK_JWT_PRIVATE_KEY",
                &self.jwt_private_key,
                &self.jwt_private_key_file,
            )?
            .map(Secret::new),
            issuer: self.jwt_issuer.clone().filter(|s| !s.is_empty()),
            audience: self.jwt_audience.clone().filter(|s| !s.is_empty()),
            leeway_seconds: self.jwt_leeway_secs,
            max_lifetime_seconds: self.jwt_max_lifetime_secs,
        })
    }

    /// The TLS settings when both certificate and key are given; an error when only one is.
    pub fn tls(&self) -> Result<Option<TlsSettings>, SettingsError> {
        let cert = read("LOGBOOK_TLS_CERT", &self.tls_cert, &self.tls_cert_file)?;
        let key = read("LOGBOOK_TLS_KEY", &self.tls_key, &self.tls_key_file)?;
        match (cert, key) {
            (Some(cert_pem), Some(key)) => Ok(Some(TlsSettings {
                cert_pem,
                key_pem: Secret::new(key),
            })),
            (None, None) => Ok(None),
            _ => Err(SettingsError::Invalid(
                "LOGBOOK_TLS_CERT and LOGBOOK_TLS_KEY go together".into(),
            )),
        }
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A value from itself or from a file (the file wins); empty values count as unset.
fn read(
    name: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, SettingsError> {
    Ok(crate::settings::read_value(name, value, file)?.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        security: SecurityArgs,
    }

    #[test]
    fn tls_needs_both_halves_and_leeway_is_bounded() {
        let parse = |args: &[&str]| Cli::parse_from([&["x"], args].concat()).security;
        assert!(parse(&[]).tls().expect("resolves").is_none());
        assert!(parse(&["--tls-cert", "C"]).tls().is_err());
        let both = parse(&["--tls-cert", "C", "--tls-key", "K"]);
        assert_eq!(both.tls().expect("ok").expect("some").cert_pem, "C");
        assert!(parse(&["--jwt-leeway-secs", "301"]).jwt_options().is_err());
        assert_eq!(
            parse(&["--cors-origins", "https://a.example, https://b.example"]).cors_origins(),
            ["https://a.example", "https://b.example"]
        );
    }
}
