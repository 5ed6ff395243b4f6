//! TLS of the read API, from a certificate and key in PEM files (a mounted `kubernetes.io/tls`
//! Secret). The files are read again when they change, so a certificate renewed in the Secret
//! (cert-manager, or by hand) is served without a restart: the kubelet updates the mounted
//! files, and the next handshake after [`RECHECK`] sees them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often a handshake looks whether the files changed.
const RECHECK: Duration = Duration::from_secs(10);

/// Where the certificate chain and its key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the TLS key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key does not fit rustls: {0}")]
    Unusable(rustls::Error),
}

/// The server's TLS configuration (HTTP/1.1 only), its certificate read from `files` now and
/// again whenever they change.
pub fn server_config(files: TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = Reloading::new(files, RECHECK)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Unusable)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate in use, and when the files were last looked at.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    recheck: Duration,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
    checked: Mutex<Instant>,
}

impl Reloading {
    fn new(files: TlsFiles, recheck: Duration) -> Result<Self, TlsError> {
        let key = load(&files)?;
        let modified = modified(&files);
        Ok(Reloading {
            files,
            recheck,
            current: RwLock::new((key, modified)),
            checked: Mutex::new(Instant::now()),
        })
    }

    fn in_use(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// Reads the files again if they changed since they were last read; a broken new pair is
    /// logged and the one in use is kept.
    fn refresh(&self) {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.elapsed() < self.recheck {
                return;
            }
            *checked = Instant::now();
        }
        let modified = modified(&self.files);
        if modified == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return;
        }
        match load(&self.files) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (key, modified);
                tracing::info!(cert = %self.files.cert.display(), "read API: TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "read API: the changed TLS files cannot be used; the certificate in use is kept")
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.in_use())
    }
}

/// The later modification time of the two files (the kubelet swaps both at once).
fn modified(files: &TlsFiles) -> Option<SystemTime> {
    let at = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    at(&files.cert).max(at(&files.key))
}

fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_error = |reason: String| TlsError::Cert { path: files.cert.clone(), reason };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key { path: files.key.clone(), reason: e.to_string() })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).map_err(TlsError::Unusable)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(TlsError::Unusable)?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` and its key, as PEM.
    pub(in crate::server) fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    pub(in crate::server) fn write(dir: &std::path::Path, (cert, key): &(String, String)) -> TlsFiles {
        let files = TlsFiles { cert: dir.join("tls.crt"), key: dir.join("tls.key") };
        std::fs::write(&files.cert, cert).expect("write cert");
        std::fs::write(&files.key, key).expect("write key");
        files
    }

    #[test]
    fn missing_or_broken_files_are_errors_that_name_them() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = TlsFiles { cert: dir.path().join("none.crt"), key: dir.path().join("none.key") };
        let e = server_config(missing).expect_err("missing");
        assert!(e.to_string().contains("none.crt"), "{e}");
        let pair = self_signed();
        let files = write(dir.path(), &pair);
        std::fs::write(&files.key, "not a key").expect("write");
        let e = server_config(files.clone()).expect_err("broken key");
        assert!(e.to_string().contains("tls.key"), "{e}");
        // A key of another certificate.
        let other = self_signed();
        std::fs::write(&files.cert, &pair.0).expect("write");
        std::fs::write(&files.key, &other.1).expect("write");
        assert!(matches!(server_config(files), Err(TlsError::Unusable(_))));
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let files = write(dir.path(), &self_signed());
        let reloading = Reloading::new(files.clone(), Duration::ZERO).expect("first pair");
        let first = reloading.in_use().cert[0].clone();
        // Renewed: a new pair, written as the kubelet does (both files, new times).
        let renewed = self_signed();
        let later = SystemTime::now() + Duration::from_secs(5);
        write(dir.path(), &renewed);
        for p in [&files.cert, &files.key] {
            std::fs::File::options().write(true).open(p).and_then(|f| f.set_modified(later)).expect("touch");
        }
        reloading.refresh();
        let second = reloading.in_use().cert[0].clone();
        assert_ne!(first, second, "the renewed certificate is in use");
        // A broken write keeps the one in use.
        std::fs::write(&files.key, "garbage").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&files.key)
            .and_then(|f| f.set_modified(later + Duration::from_secs(5)))
            .expect("touch");
        reloading.refresh();
        assert_eq!(reloading.in_use().cert[0], second);
    }
}
