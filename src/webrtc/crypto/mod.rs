//! str0m's crypto, built from what the binary links anyway, so the WebRTC
//! build needs no C library of its own: DTLS by dimpl ([`dtls`]) with its
//! RustCrypto ciphers and hashes and our P-256 key exchange and ECDSA by
//! ring ([`p256`]), SRTP and the hashes by the RustCrypto crates
//! ([`srtp`]), and the DTLS certificate by rcgen over ring ([`cert`]), the
//! ring the RTMPS client links.
//!
//! Why not one of str0m's own backends:
//! - aws-lc-rs (its default) has a record of failing to build for 32-bit
//!   ARM (aws-lc-rs issues 427 and 681), and str0m-rust-crypto pulls it in
//!   too, for rcgen's certificate (dimpl's `rcgen` feature);
//! - OpenSSL built from source (`vendored`) works on armel but added
//!   4.4 MB to the static armel binary (8,522,952 bytes), over its 5 MiB
//!   budget.

mod cert;
mod dtls;
mod p256;
mod srtp;

use std::sync::{Arc, OnceLock};

use str0m::crypto::{CryptoProvider, Sha1HmacProvider, Sha256Provider};

pub use cert::certificate;

/// The provider every peer's `Rtc` is built with: one for the process,
/// since its DTLS part keeps the dimpl configuration it made.
pub fn provider() -> Arc<CryptoProvider> {
    static SRTP: srtp::Srtp = srtp::Srtp;
    static HASH: Hashes = Hashes;
    static DTLS: dtls::Dtls = dtls::Dtls::new();
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                srtp_provider: &SRTP,
                sha1_hmac_provider: &HASH,
                sha256_provider: &HASH,
                dtls_provider: &DTLS,
            })
        })
        .clone()
}

/// HMAC-SHA1 (STUN's MESSAGE-INTEGRITY) and SHA-256 (the certificate
/// fingerprint in the SDP).
#[derive(Debug)]
struct Hashes;

impl Sha1HmacProvider for Hashes {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        use hmac::Mac;
        // HMAC takes a key of any length: new_from_slice cannot fail.
        let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(key) else {
            return [0; 20];
        };
        for p in payloads {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

impl Sha256Provider for Hashes {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(data).into()
    }
}

#[cfg(test)]
mod tests;
