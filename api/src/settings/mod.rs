//! The HTTP API's settings ([`http::HttpArgs`], with [`security`]'s JWT and TLS groups), the
//! log format, the one error type of settings, and how secrets are read (`*_FILE` wins over the
//! value). The binary's subcommands flatten these groups beside their own (Kafka, database,
//! processing: `logbook-cli`'s `settings` module).

use std::path::PathBuf;

pub mod http;
pub mod security;

use clap::ValueEnum;
use logbook_events::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set (flag or environment variable)")]
    Missing(&'static str),
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error("invalid LOGBOOK_RATE_LIMITS: {0}")]
    RateLimits(String),
    #[error("cannot read {name} from {path}: {source}")]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A secret from its value or from a file (the file wins; one trailing newline is dropped).
pub fn secret(
    name: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, SettingsError> {
    if file.is_none() {
        return Ok(value.clone().map(Secret::new));
    }
    Ok(read_value(name, value, file)?.map(|text| {
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Secret::new(text.strip_suffix('\r').unwrap_or(text))
    }))
}

/// A setting from its value or from a file, as written (the file wins).
pub fn read_value(
    name: &'static str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, SettingsError> {
    match file {
        Some(path) => {
            std::fs::read_to_string(path)
                .map(Some)
                .map_err(|source| SettingsError::SecretFile {
                    name,
                    path: path.clone(),
                    source,
                })
        }
        None => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_wins_and_loses_its_newline() {
        let dir = std::env::temp_dir().join(format!("logbook-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("secret");
        std::fs::write(&path, "from-file\n").expect("write");
        let resolved = secret("X", &Some("from-env".into()), &Some(path)).expect("reads");
        assert_eq!(resolved.expect("set").expose(), "from-file");
        let missing = secret("X", &None, &Some(dir.join("nope")));
        assert!(matches!(missing, Err(SettingsError::SecretFile { .. })));
    }
}
