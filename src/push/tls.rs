//! RTMPS: TLS (rustls on the ring backend) between the publisher and the
//! socket, sans I/O. Certificates are verified by default, with SNI, against
//! the system store (`/etc/ssl/certs`), the bundled Mozilla roots
//! (webpki-roots) when the system has none, or only the CAs of
//! `push-tls-ca` when it is set.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

/// The system's CA bundle (Debian's ca-certificates) and its directory.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

/// Why the TLS client could not be set up.
#[derive(Debug)]
pub enum TlsSetupError {
    /// `push-tls-ca` could not be read.
    ReadCa {
        path: PathBuf,
        error: io::Error,
    },
    /// `push-tls-ca` holds no usable certificate.
    NoCertificate {
        path: PathBuf,
    },
    Rustls(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadCa { path, error } => {
                write!(f, "push-tls-ca: cannot read {}: {error}", path.display())
            }
            Self::NoCertificate { path } => write!(
                f,
                "push-tls-ca: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            Self::Rustls(e) => write!(f, "TLS setup: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ReadCa { error, .. } => Some(error),
            Self::Rustls(e) => Some(e),
            Self::NoCertificate { .. } => None,
        }
    }
}

/// Where the trusted roots came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    File(PathBuf),
    System(usize),
    Bundled,
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "the CAs in {}", p.display()),
            Self::System(n) => write!(f, "{n} CAs from {SYSTEM_DIR}"),
            Self::Bundled => f.write_str("the bundled Mozilla roots (webpki-roots)"),
        }
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> usize {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    roots.add_parsable_certificates(certs).0
}

/// The system store: Debian's bundle, else every `*.pem`/`*.crt` in the
/// directory.
fn system_roots(roots: &mut RootCertStore) -> usize {
    if let Ok(pem) = std::fs::read(SYSTEM_BUNDLE) {
        let n = add_pem(roots, &pem);
        if n > 0 {
            return n;
        }
    }
    let Ok(dir) = std::fs::read_dir(SYSTEM_DIR) else {
        return 0;
    };
    let mut n = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "pem" | "crt") {
            if let Ok(pem) = std::fs::read(&path) {
                n += add_pem(roots, &pem);
            }
        }
    }
    n
}

/// The client configuration for every RTMPS target.
pub fn client_config(ca_file: Option<&Path>) -> Result<(Arc<ClientConfig>, Roots), TlsSetupError> {
    let mut roots = RootCertStore::empty();
    let source = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|error| TlsSetupError::ReadCa {
                path: path.to_path_buf(),
                error,
            })?;
            if add_pem(&mut roots, &pem) == 0 {
                return Err(TlsSetupError::NoCertificate {
                    path: path.to_path_buf(),
                });
            }
            Roots::File(path.to_path_buf())
        }
        None => match system_roots(&mut roots) {
            0 => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                Roots::Bundled
            }
            n => Roots::System(n),
        },
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(config), source))
}

/// Why a TLS connection failed, naming the host and what was wrong.
#[derive(Debug)]
pub struct TlsError {
    pub host: String,
    pub error: rustls::Error,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        match &self.error {
            rustls::Error::InvalidCertificate(c) => {
                let what = match c {
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        "has expired".to_string()
                    }
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                        "is not valid yet (check the clock)".to_string()
                    }
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. } => {
                        format!("is not valid for the name {host} (wrong name)")
                    }
                    CertificateError::UnknownIssuer => {
                        "is signed by an unknown CA (set push-tls-ca for a private CA)".to_string()
                    }
                    CertificateError::Revoked => "has been revoked".to_string(),
                    CertificateError::BadSignature => "has a bad signature".to_string(),
                    other => format!("was refused: {other:?}"),
                };
                write!(f, "TLS with {host}: the server's certificate {what}")
            }
            e => write!(f, "TLS with {host}: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// One TLS client connection, sans I/O: plaintext in and out, records in
/// and out. Plaintext written before the handshake finishes is held back
/// (rustls buffers it): nothing of the RTMP session, stream key included,
/// leaves before the server's certificate has been verified.
#[derive(Debug)]
pub struct Tls {
    conn: ClientConnection,
    host: String,
}

impl Tls {
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError {
            host: host.to_string(),
            error: rustls::Error::General("not a valid DNS name or IP address".into()),
        })?;
        let conn = ClientConnection::new(config, name).map_err(|error| TlsError {
            host: host.to_string(),
            error,
        })?;
        Ok(Self {
            conn,
            host: host.to_string(),
        })
    }

    /// Queues plaintext for the server.
    pub fn write_plain(&mut self, plain: &[u8]) {
        // Into rustls' own buffer: cannot fail for a Vec-backed writer.
        let _ = self.conn.writer().write_all(plain);
    }

    /// TLS records to send now (the handshake, then encrypted data).
    pub fn take_records(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Takes records from the server; appends the plaintext they carry.
    pub fn read_records(&mut self, mut raw: &[u8], plain: &mut Vec<u8>) -> Result<(), TlsError> {
        while !raw.is_empty() {
            if self.conn.read_tls(&mut raw).is_err() {
                break;
            }
            let state = self.conn.process_new_packets().map_err(|error| TlsError {
                host: self.host.clone(),
                error,
            })?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                let got = self.conn.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + got);
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// A close_notify alert for a polite end.
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named_and_the_system_store_loads() {
        let dir = std::env::temp_dir().join(format!("edgestream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(e.to_string().starts_with("push-tls-ca: cannot read"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = client_config(Some(&junk)).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
        // Here (and in CI) Debian's ca-certificates is installed.
        let (_, roots) = client_config(None).unwrap();
        assert!(matches!(roots, Roots::System(n) if n > 10), "{roots}");
    }

    #[test]
    fn certificate_errors_name_the_host_and_the_fault() {
        let e = |c| {
            TlsError {
                host: "ingest.example".into(),
                error: rustls::Error::InvalidCertificate(c),
            }
            .to_string()
        };
        assert_eq!(
            e(CertificateError::Expired),
            "TLS with ingest.example: the server's certificate has expired"
        );
        assert!(e(CertificateError::NotValidForName).contains("wrong name"));
        assert!(e(CertificateError::UnknownIssuer).contains("unknown CA"));
    }

    #[test]
    fn nothing_but_a_client_hello_leaves_before_the_handshake() {
        let (config, _) = client_config(None).unwrap();
        let mut tls = Tls::new(config, "ingest.example").unwrap();
        tls.write_plain(b"rtmp bytes with the stream key s3cret");
        let mut out = Vec::new();
        tls.take_records(&mut out);
        assert!(tls.is_handshaking());
        assert_eq!(out[0], 22, "a handshake record");
        assert!(!out.windows(6).any(|w| w == b"s3cret"));
        // SNI: the host name is in the ClientHello.
        assert!(out.windows(14).any(|w| w == b"ingest.example"));
    }
}
