//! HTTPS: a rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1
//! by ALPN) from the PEM certificate chain and key of [`TlsSettings`].

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::settings::security::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("LOGBOOK_TLS_CERT holds no PEM certificate")]
    NoCertificate,
    #[error("LOGBOOK_TLS_CERT is not valid PEM: {0}")]
    Certificate(rustls::pki_types::pem::Error),
    // The key's text never goes into the message.
    #[error("LOGBOOK_TLS_KEY is not a PEM private key")]
    Key,
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server configuration for `tls`.
pub fn server_config(tls: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Certificate)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose().as_bytes())
        .map_err(|_| TlsError::Key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_events::Secret;

    #[test]
    fn a_generated_certificate_loads_and_garbage_is_refused_without_echoing_it() {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
        let good = TlsSettings {
            cert_pem: generated.cert.pem(),
            key_pem: Secret::new(generated.signing_key.serialize_pem()),
        };
        assert!(server_config(&good).is_ok());
        let bad_key = TlsSettings {
            key_pem: Secret::new(
                "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
            ),
            ..good.clone()
        };
        let error = server_config(&bad_key).expect_err("refused").to_string();
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let no_cert = TlsSettings {
            cert_pem: "nothing here".into(),
            ..good
        };
        assert!(matches!(
            server_config(&no_cert),
            Err(TlsError::NoCertificate)
        ));
    }
}
