//! Security flags and `LOGBOOK_*` variables: the bearer tokens' key, algorithm and claims
//! ([`JwtArgs`], used by `serve`, `all` and `token`) and the HTTPS listener's certificate
//! ([`TlsArgs`]). The `*_FILE` forms are read once, at start.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use logbook_events::Secret;

use crate::auth::{JwtAlgorithm, JwtOptions, MAX_LEEWAY_SECONDS};
use crate::settings::SettingsError;

/// The key-encryption keys of personal data, the current one first (never printed).
#[derive(Clone, Default)]
pub struct KekSettings {
    pub keys: Vec<[u8; crate::personal::crypto::KEY_LEN]>,
}

impl std::fmt::Debug for KekSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KekSettings({} keys, ***)", self.keys.len())
    }
}

/// The key-encryption keys that wrap the account holders' data keys (docs/security.md,
/// "Personal data"). Without one, requests carrying personal data are refused.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Personal data")]
pub struct KekArgs {
    /// Key-encryption key: 32 random bytes in base64 (`openssl rand -base64 32`).
    #[arg(long, env = "LOGBOOK_KEK", hide_env_values = true)]
    pub kek: Option<String>,
    #[arg(long, env = "LOGBOOK_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
    /// Earlier key-encryption keys (comma- or newline-separated), still needed to unwrap keys
    /// until `logbook keys rotate` has rewrapped them under the current one.
    #[arg(long, env = "LOGBOOK_KEK_PREVIOUS", hide_env_values = true)]
    pub kek_previous: Option<String>,
    #[arg(long, env = "LOGBOOK_KEK_PREVIOUS_FILE")]
    pub kek_previous_file: Option<PathBuf>,
}

impl KekArgs {
    /// The keys, or `None` when no current key is configured.
    pub fn resolve(&self) -> Result<Option<KekSettings>, SettingsError> {
        let parse = |text: &str| {
            crate::personal::crypto::parse_kek(text)
                .map_err(|e| SettingsError::Invalid(format!("LOGBOOK_KEK: {e}")))
        };
        let current = super::secret("LOGBOOK_KEK", &self.kek, &self.kek_file)?
            .filter(|s| !s.expose().trim().is_empty());
        let previous = super::secret(
            "LOGBOOK_KEK_PREVIOUS",
            &self.kek_previous,
            &self.kek_previous_file,
        )?;
        let Some(current) = current else {
            if previous.is_some_and(|p| !p.expose().trim().is_empty()) {
                return Err(SettingsError::Invalid(
                    "LOGBOOK_KEK_PREVIOUS needs LOGBOOK_KEK (the current key)".into(),
                ));
            }
            return Ok(None);
        };
        let mut keys = vec![parse(current.expose())?];
        if let Some(previous) = previous {
            for text in previous
                .expose()
                .split([',', '\n'])
                .filter(|t| !t.trim().is_empty())
            {
                keys.push(parse(text)?);
            }
        }
        Ok(Some(KekSettings { keys }))
    }
}

/// The certificate chain and key of the HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// The key tokens are checked (and minted) with, and the claims they must carry.
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    /// The HS256 secret.
    pub secret: Option<Secret>,
    pub options: JwtOptions,
}

#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Bearer tokens")]
pub struct JwtArgs {
    /// HS256 secret for the bearer tokens.
    #[arg(long, env = "LOGBOOK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Signature algorithm of the bearer tokens.
    #[arg(long, env = "LOGBOOK_JWT_ALGORITHM", value_enum, default_value_t = JwtAlgorithm::Hs256)]
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM public key for RS256/ES256 (value or file).
    #[arg(long, env = "LOGBOOK_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// PEM private key for RS256/ES256, only to mint tokens with `logbook token`.
    #[arg(long, env = "LOGBOOK_JWT_PRIVATE_KEY", hide_env_values = true)]
    pub jwt_private_key: Option<String>,
    #[arg(long, env = "LOGBOOK_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "LOGBOOK_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "LOGBOOK_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp`/`nbf`, seconds (at most 300).
    #[arg(long, env = "LOGBOOK_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
    /// Longest token lifetime accepted (and minted), seconds: a stolen token is worth at most
    /// this long.
    #[arg(long, env = "LOGBOOK_JWT_MAX_LIFETIME_SECS", default_value_t = 86_400)]
    pub jwt_max_lifetime_secs: u64,
}

impl JwtArgs {
    pub fn resolve(&self) -> Result<JwtSettings, SettingsError> {
        Ok(JwtSettings {
            secret: super::secret(
                "LOGBOOK_JWT_SECRET",
                &self.jwt_secret,
                &self.jwt_secret_file,
            )?,
            options: self.options()?,
        })
    }

    fn options(&self) -> Result<JwtOptions, SettingsError> {
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
}

/// The HTTPS listener's certificate and key (plain HTTP when neither is given).
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// PEM certificate chain: HTTPS when set together with the key.
    #[arg(long, env = "LOGBOOK_TLS_CERT")]
    pub tls_cert: Option<String>,
    #[arg(long, env = "LOGBOOK_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "LOGBOOK_TLS_KEY", hide_env_values = true)]
    pub tls_key: Option<String>,
    #[arg(long, env = "LOGBOOK_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
}

impl TlsArgs {
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
        jwt: JwtArgs,
        #[command(flatten)]
        tls: TlsArgs,
    }

    #[test]
    fn tls_needs_both_halves_and_leeway_is_bounded() {
        let parse = |args: &[&str]| Cli::parse_from([&["x"], args].concat());
        assert!(parse(&[]).tls.tls().expect("resolves").is_none());
        assert!(parse(&["--tls-cert", "C"]).tls.tls().is_err());
        let both = parse(&["--tls-cert", "C", "--tls-key", "K"]);
        assert_eq!(both.tls.tls().expect("ok").expect("some").cert_pem, "C");
        assert!(parse(&["--jwt-leeway-secs", "301"]).jwt.resolve().is_err());
        let mut jwt = parse(&["--jwt-secret", "s"]).jwt;
        jwt.jwt_secret_file = None; // whatever the environment says
        let secret = jwt.resolve().expect("ok");
        assert_eq!(secret.secret.expect("set").expose(), "s");
    }
}
