//! DTLS for str0m by dimpl (sans-IO, as str0m is), version 1.2: ECDHE and
//! ECDSA certificates on P-256 by ring ([`super::p256`]), the record
//! ciphers, hashes and HMAC from dimpl's RustCrypto backend, the SRTP
//! keying material exporter.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dimpl::crypto::{HashAlgorithm, SupportedDtls12CipherSuite, SupportedKxGroup};
use str0m::config::{DtlsCert, DtlsVersion};
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, ProtocolVersion};

use super::p256::{P256Keys, P256Kx, P256Verifier};

/// dimpl's crypto: its RustCrypto backend for what runs per record and
/// per handshake message, ours for the public-key operations. Only what is
/// picked here is linked: P-384 and X25519, and the SHA-384 suite (whose
/// self-test needs a P-384 certificate), stay out of the binary.
fn dimpl_crypto() -> dimpl::crypto::CryptoProvider {
    static KX: [&dyn SupportedKxGroup; 1] = [&P256Kx];
    static SUITES: OnceLock<Vec<&'static dyn SupportedDtls12CipherSuite>> = OnceLock::new();
    let base = dimpl::crypto::rust_crypto::default_provider();
    let suites = SUITES.get_or_init(|| {
        base.cipher_suites
            .iter()
            .copied()
            .filter(|s| s.hash_algorithm() == HashAlgorithm::SHA256)
            .collect()
    });
    dimpl::crypto::CryptoProvider {
        kx_groups: &KX,
        signature_verification: &P256Verifier,
        key_provider: &P256Keys,
        secure_random: base.secure_random,
        hash_provider: base.hash_provider,
        hmac_provider: base.hmac_provider,
        cipher_suites: suites,
        // Never used (DTLS 1.2 only, see `new_dtls`), but dimpl's self-test
        // wants some.
        dtls13_cipher_suites: base.dtls13_cipher_suites,
    }
}

/// The provider, with the dimpl configuration it made last: building one
/// runs dimpl's self-test of the crypto (key exchanges, signatures, known
/// answers), which is the same for every peer, so it is done once per MTU.
#[derive(Debug)]
pub(super) struct Dtls {
    config: Mutex<Option<(Option<usize>, Arc<dimpl::Config>)>>,
}

impl Dtls {
    pub(super) const fn new() -> Self {
        Self {
            config: Mutex::new(None),
        }
    }

    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        // A panic elsewhere while this was held left a valid Option.
        let mut cached = self.config.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((m, config)) = cached.as_ref()
            && *m == mtu
        {
            return Ok(config.clone());
        }
        // ICE has checked the peer's return path before DTLS starts, so a
        // server cookie round trip would only add delay.
        let mut builder = dimpl::Config::builder()
            .use_server_cookie(false)
            .with_crypto_provider(dimpl_crypto());
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?,
        );
        *cached = Some((mtu, config.clone()));
        Ok(config)
    }
}

impl DtlsProvider for Dtls {
    /// str0m asks only when the `RtcConfig` has no certificate (ours is
    /// made once per process and always set).
    fn generate_certificate(&self) -> Option<DtlsCert> {
        let mut serial = [0; 16];
        crate::sys::fill_random(&mut serial).ok()?;
        super::certificate(serial).ok()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        // DTLS 1.2 only, what str0m asks for unless told otherwise and what
        // every browser speaks: dimpl's 1.3 code would be ~100 KB of the
        // armel binary for nothing.
        if version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!("{version} is not supported")));
        }
        let mut dtls = dimpl::Dtls::new_12(self.config(mtu)?, cert.clone(), now);
        // dimpl makes its random on the first timeout and unwraps it when
        // the first ClientHello comes: start its clock before any packet.
        dtls.handle_timeout(now).map_err(CryptoError::DtlsImpl)?;
        Ok(Box::new(Instance(dtls)))
    }
}

struct Instance(dimpl::Dtls);

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dimpl::Dtls")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        self.0.poll_output(buf)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<(), DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}
