//! The DTLS certificate: self-signed ECDSA P-256 (what browsers make for
//! themselves), made once per process by rcgen over ring. The SDP carries
//! its SHA-256 fingerprint; nothing else checks it, so its names and dates
//! only need to parse.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use str0m::config::DtlsCert;

/// Why no certificate could be made.
#[derive(Debug)]
pub struct CertError(rcgen::Error);

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot make the WebRTC DTLS certificate")
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A new self-signed certificate and its PKCS#8 key, both DER.
/// `serial` must differ between certificates (Firefox refuses a DTLS
/// peer whose issuer and serial it has seen with another key).
pub fn certificate(serial: [u8; 16]) -> Result<DtlsCert, CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertError)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "edgestream");
    params.distinguished_name = name;
    params.serial_number = Some(serial.to_vec().into());
    // rcgen's default validity (1975 to 4096) needs no clock: the device
    // may boot without one.
    let cert = params.self_signed(&key).map_err(CertError)?;
    Ok(DtlsCert {
        certificate: cert.der().to_vec(),
        private_key: key.serialize_der(),
    })
}
