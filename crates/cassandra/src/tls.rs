//! TLS to the Cassandra nodes: the rustls client configuration for `store.cassandra.tls`, which
//! trusts exactly the certificates of its CA file.
//!
//! Never falls back to plaintext or to an unverified connection: a CA file that cannot be read,
//! or holds no certificate, fails the start with the file's name.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::TlsConfig;
use crate::error::CassandraError;

/// The client configuration for `tls`; `None` when TLS is off.
pub(crate) fn client_config(
    tls: &TlsConfig,
) -> Result<Option<Arc<rustls::ClientConfig>>, CassandraError> {
    if !tls.enabled {
        return Ok(None);
    }
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| CassandraError::Tls {
        ca_file: tls.ca_file.clone(),
        source,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| fail(Box::new(e)))? {
        let cert = cert.map_err(|e| fail(Box::new(e)))?;
        roots.add(cert).map_err(|e| fail(Box::new(e)))?;
    }
    if roots.is_empty() {
        return Err(fail("the file holds no PEM certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_enabled_and_a_bad_ca_file_is_named() {
        assert!(client_config(&TlsConfig::default()).unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for ca_file in [empty, dir.path().join("missing.pem")] {
            let tls = TlsConfig {
                enabled: true,
                ca_file: ca_file.display().to_string(),
            };
            let err = client_config(&tls).unwrap_err().to_string();
            assert!(err.contains(&tls.ca_file), "{err}");
        }
    }
}
