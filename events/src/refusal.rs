//! Kafka or PostgreSQL refusing this process: its credentials were not accepted, or an ACL
//! denies its role something it needs (a topic, its group, its transactional id, the cluster).
//!
//! Every other error of a dependency is waited out ([`crate::retry`]); a refusal is proven
//! fatal, because the server answered and said no, and a restart with the same settings gets the
//! same answer. Kafka client contexts report what librdkafka tells them through
//! [`crate::kafka::client_error`] (which also logs it), roles report the errors of their own calls through [`note`] (Kafka) and
//! [`note_database`] (the caller classifies PostgreSQL's errors), and the role runner stops the
//! process with one clear error when [`refused`] says so.

use std::sync::OnceLock;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The first refusal this process saw.
static REFUSED: OnceLock<String> = OnceLock::new();

/// Whether `code` says that Kafka refused the client's identity or permissions.
pub fn is_refusal_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
    )
}

/// Whether `error` is a refusal.
pub fn is_refusal(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(is_refusal_code)
}

/// Remembers `error` (with librdkafka's `reason`, which names the broker and the mechanism) if
/// it is a refusal, and says whether it was.
pub fn note(error: &KafkaError, reason: &str) -> bool {
    if !is_refusal(error) {
        return false;
    }
    if REFUSED.set(describe(&error.to_string(), reason)).is_ok() {
        tracing::warn!(%error, reason, "kafka refused this client");
    }
    true
}

/// Remembers that PostgreSQL refused this process (`detail`: its error message).
pub fn note_database(detail: &str) {
    let line = format!(
        "postgresql refused this process: {detail}; a restart with the same settings cannot fix \
         this: check the user of LOGBOOK_DATABASE_URL, LOGBOOK_DATABASE_PASSWORD_FILE and the \
         server's pg_hba.conf (docs/security.md, least privilege)"
    );
    if REFUSED.set(line).is_ok() {
        tracing::warn!(error = detail, "postgresql refused this client");
    }
}

/// The refusal this process saw, if any, as one line that says what to check.
pub fn refused() -> Option<&'static str> {
    REFUSED.get().map(String::as_str)
}

fn describe(error: &str, reason: &str) -> String {
    let detail = if reason.is_empty() || error.contains(reason) {
        error.to_string()
    } else {
        format!("{error} ({reason})")
    };
    format!(
        "kafka refused this process: {detail}; a restart with the same settings cannot fix this: \
         check LOGBOOK_KAFKA_SASL_USERNAME and its password file, and the ACLs of this role \
         (docs/security.md, least privilege)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_and_authorization_failures_are_refusals_and_outages_are_not() {
        for code in [
            RDKafkaErrorCode::Authentication,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::GroupAuthorizationFailed,
            RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
        ] {
            assert!(is_refusal(&KafkaError::Global(code)), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::PartitionEOF,
        ] {
            assert!(!is_refusal(&KafkaError::Global(code)), "{code:?}");
        }
        assert!(!is_refusal(&KafkaError::Canceled));
    }

    #[test]
    fn the_description_names_the_error_and_what_to_check() {
        let line = describe(
            "Global error: Authentication (Local: Authentication failure)",
            "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error",
        );
        assert!(line.contains("Authentication failure"));
        assert!(line.contains("sasl_ssl://127.0.0.1:9093"));
        assert!(line.contains("LOGBOOK_KAFKA_SASL_USERNAME"));
    }
}
