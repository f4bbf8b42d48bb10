//! DTLS for str0m by dimpl (sans-IO, as str0m is) over its RustCrypto
//! backend, version 1.2: ECDHE with P-256 or X25519, ECDSA certificates, the SRTP
//! keying material exporter.

use std::sync::Arc;
use std::time::Instant;

use str0m::config::{DtlsCert, DtlsVersion};
use str0m::crypto::CryptoError;
use str0m::crypto::dtls::{DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, ProtocolVersion};

#[derive(Debug)]
pub(super) struct Dtls;

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
        // ICE has checked the peer's return path before DTLS starts, so a
        // server cookie round trip would only add delay.
        let mut config = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            config = config.mtu(mtu);
        }
        let config = Arc::new(
            config
                .build()
                .map_err(|e| CryptoError::Other(format!("DTLS configuration: {e}")))?,
        );
        // DTLS 1.2 only, what str0m asks for unless told otherwise and what
        // every browser speaks: dimpl's 1.3 code would be ~100 KB of the
        // armel binary for nothing.
        if version != DtlsVersion::Dtls12 {
            return Err(CryptoError::Other(format!("{version} is not supported")));
        }
        let mut dtls = dimpl::Dtls::new_12(config, cert.clone(), now);
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
