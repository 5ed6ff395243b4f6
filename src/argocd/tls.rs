//! The rustls configuration for talking to Argo CD: system roots plus an optional CA from a
//! Secret, an optional name to verify the certificate against, or no verification at all.

use std::sync::{Arc, LazyLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// TLS settings of one ArgoCdInstance, with the CA already read from its Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    pub insecure_skip_verify: bool,
    pub ca_pem: Option<Vec<u8>>,
    pub server_name: Option<String>,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration. Fails on an unreadable CA, naming the problem.
pub fn client_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
        Arc::new(NoVerification(provider.signature_verification_algorithms))
    } else {
        let roots = roots(settings.ca_pem.as_deref())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("cannot build certificate verifier: {e}"))?;
        match settings.server_name.as_deref().filter(|s| !s.is_empty()) {
            Some(name) => {
                let name = ServerName::try_from(name.to_string())
                    .map_err(|_| format!("tls.serverName {name:?} is not a valid DNS name or IP address"))?;
                Arc::new(VerifyAs { name, inner: webpki })
            }
            None => webpki,
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// The system's CA roots, read from disk once per process (blocking file I/O): every client
/// starts from a copy. Missing or partly unreadable roots are not fatal: a private CA may be
/// all an instance needs.
/// Shared by every client without a CA of its own: a copy per client is about 100 KiB, which
/// a fleet of hundreds of instances would hold hundreds of times.
static SYSTEM_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    Arc::new(store)
});

/// Reads the system roots now; `argomap run` calls it on a blocking thread at start, so no
/// client build does file I/O on the async runtime.
pub fn load_system_roots() -> usize {
    SYSTEM_ROOTS.len()
}

fn roots(ca_pem: Option<&[u8]>) -> Result<Arc<RootCertStore>, String> {
    let Some(pem) = ca_pem else { return Ok(SYSTEM_ROOTS.clone()) };
    let mut store = RootCertStore::clone(&SYSTEM_ROOTS);
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("the CA certificate is not valid PEM: {e}"))?;
        store.add(cert).map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("the CA Secret key holds no PEM certificate".into());
    }
    Ok(Arc::new(store))
}

/// Verifies the certificate against a configured name instead of the URL's host
/// (`tls.serverName`, like kubectl's `tls-server-name`).
#[derive(Debug)]
struct VerifyAs {
    name: ServerName<'static>,
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: accepts any certificate, still checks handshake signatures.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_ca_is_refused_with_a_reason() {
        let s = TlsSettings { ca_pem: Some(b"hello".to_vec()), ..Default::default() };
        let err = client_config(&s).expect_err("no PEM");
        assert!(err.contains("no PEM certificate"), "{err}");
        let s = TlsSettings {
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
            ..Default::default()
        };
        assert!(client_config(&s).is_err());
    }

    #[test]
    fn bad_server_name_is_refused() {
        let s = TlsSettings { server_name: Some("not a name!".into()), ..Default::default() };
        let err = client_config(&s).expect_err("bad name");
        assert!(err.contains("serverName"), "{err}");
    }

    #[test]
    fn defaults_and_insecure_build() {
        assert!(client_config(&TlsSettings::default()).is_ok());
        let s = TlsSettings { insecure_skip_verify: true, ..Default::default() };
        assert!(client_config(&s).is_ok());
    }
}
