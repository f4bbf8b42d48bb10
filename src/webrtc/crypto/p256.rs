//! The public-key half of DTLS for dimpl: ECDHE, ECDSA signing and the
//! peer certificate's signature check, all P-256 and SHA-256 only, by ring
//! (which rustls links already) and rustls-webpki (which parses the peer's
//! certificate for rustls too).
//!
//! dimpl's RustCrypto backend also offers P-384 and X25519: they are ~200 KB
//! of the armel binary (whose budget is 5 MiB) and no browser needs them.
//! Chromium, Firefox and Safari all make P-256 ECDSA certificates for WebRTC
//! and all offer P-256 for ECDHE. A peer with only P-384 gets a handshake
//! failure, logged, and the page falls back to its MSE view.

use dimpl::crypto::{
    ActiveKeyExchange, Buf, HashAlgorithm, KeyProvider, NamedGroup, SignatureAlgorithm,
    SignatureVerifier, SigningKey, SupportedKxGroup,
};
use dimpl::{CryptoError, CryptoOperation};
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls_pki_types::CertificateDer;

/// ECDHE over P-256 (secp256r1).
#[derive(Debug)]
pub(super) struct P256Kx;

impl SupportedKxGroup for P256Kx {
    fn name(&self) -> NamedGroup {
        NamedGroup::Secp256r1
    }

    fn start_exchange(&self, mut buf: Buf) -> Result<Box<dyn ActiveKeyExchange>, CryptoError> {
        let key = EphemeralPrivateKey::generate(&ECDH_P256, &SystemRandom::new())
            .map_err(|_| CryptoError::OperationFailed(CryptoOperation::GenerateEphemeralKey))?;
        let public = key
            .compute_public_key()
            .map_err(|_| CryptoError::OperationFailed(CryptoOperation::ComputePublicKey))?;
        buf.clear();
        buf.extend_from_slice(public.as_ref());
        Ok(Box::new(Exchange { key, public: buf }))
    }
}

/// One handshake's ephemeral key.
struct Exchange {
    key: EphemeralPrivateKey,
    /// The uncompressed point, as the ServerKeyExchange carries it.
    public: Buf,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("P-256 key exchange")
    }
}

impl ActiveKeyExchange for Exchange {
    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn complete(self: Box<Self>, peer_pub: &[u8], out: &mut Buf) -> Result<(), CryptoError> {
        // ring checks that the peer's point is on the curve.
        let peer = UnparsedPublicKey::new(&ECDH_P256, peer_pub);
        agreement::agree_ephemeral(self.key, &peer, |secret| {
            out.clear();
            out.extend_from_slice(secret);
        })
        .map_err(|_| CryptoError::InvalidPublicKey(NamedGroup::Secp256r1))
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::Secp256r1
    }
}

/// Loads our certificate's PKCS#8 key (what `cert::certificate` makes).
#[derive(Debug)]
pub(super) struct P256Keys;

impl KeyProvider for P256Keys {
    fn load_private_key(&self, key_der: &[u8]) -> Result<Box<dyn SigningKey>, CryptoError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key_der, &rng)
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        Ok(Box::new(P256Key(pair)))
    }
}

/// ECDSA P-256 with SHA-256, DER signatures (as TLS carries them).
struct P256Key(EcdsaKeyPair);

impl std::fmt::Debug for P256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ECDSA P-256 key")
    }
}

impl SigningKey for P256Key {
    fn sign(&mut self, data: &[u8], hash: HashAlgorithm, out: &mut Buf) -> Result<(), CryptoError> {
        if hash != HashAlgorithm::SHA256 {
            return Err(CryptoError::SigningKeyHashMismatch {
                key_hash: HashAlgorithm::SHA256,
                requested: hash,
            });
        }
        let signature = self
            .0
            .sign(&SystemRandom::new(), data)
            .map_err(|_| CryptoError::OperationFailed(CryptoOperation::Sign))?;
        out.clear();
        out.extend_from_slice(signature.as_ref());
        Ok(())
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }

    fn hash_algorithm(&self) -> HashAlgorithm {
        HashAlgorithm::SHA256
    }

    fn supported_hash_algorithms(&self) -> &[HashAlgorithm] {
        &[HashAlgorithm::SHA256]
    }
}

/// Checks the peer's ServerKeyExchange or CertificateVerify signature with
/// the key in its certificate. (The certificate itself is checked against
/// the SDP's fingerprint by str0m, not against any authority.)
#[derive(Debug)]
pub(super) struct P256Verifier;

impl SignatureVerifier for P256Verifier {
    fn verify_signature(
        &self,
        cert_der: &[u8],
        data: &[u8],
        signature: &[u8],
        hash: HashAlgorithm,
        sig: SignatureAlgorithm,
    ) -> Result<(), CryptoError> {
        if sig != SignatureAlgorithm::ECDSA {
            return Err(CryptoError::UnsupportedSignatureAlgorithm(sig));
        }
        let algorithm = match hash {
            HashAlgorithm::SHA256 => webpki::ring::ECDSA_P256_SHA256,
            HashAlgorithm::SHA384 => webpki::ring::ECDSA_P256_SHA384,
            _ => {
                return Err(CryptoError::UnsupportedSignatureVerification {
                    signature: sig,
                    hash,
                    group: NamedGroup::Secp256r1,
                });
            }
        };
        let der = CertificateDer::from(cert_der);
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|_| CryptoError::CertificateParseFailed)?;
        // webpki refuses a key of another curve (or not EC) for this
        // algorithm as well as a bad signature.
        cert.verify_signature(algorithm, data, signature)
            .map_err(|_| CryptoError::SignatureVerificationFailed {
                signature: sig,
                hash,
                group: NamedGroup::Secp256r1,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_and_key(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::default()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key.serialize_der())
    }

    #[test]
    fn signs_and_verifies_with_our_certificate() {
        let cert = super::super::certificate([7; 16]).unwrap();
        let mut key = P256Keys.load_private_key(&cert.private_key).unwrap();
        let mut sig = Buf::new();
        key.sign(
            b"client random, server random, params",
            HashAlgorithm::SHA256,
            &mut sig,
        )
        .unwrap();
        let check = |data: &[u8], sig: &[u8], hash| {
            P256Verifier.verify_signature(
                &cert.certificate,
                data,
                sig,
                hash,
                SignatureAlgorithm::ECDSA,
            )
        };
        check(
            b"client random, server random, params",
            &sig,
            HashAlgorithm::SHA256,
        )
        .unwrap();
        let e = check(
            b"client random, server random, paramz",
            &sig,
            HashAlgorithm::SHA256,
        );
        assert!(
            matches!(e, Err(CryptoError::SignatureVerificationFailed { .. })),
            "{e:?}"
        );
        // The same signature read as over SHA-384 does not verify either.
        assert!(
            check(
                b"client random, server random, params",
                &sig,
                HashAlgorithm::SHA384
            )
            .is_err()
        );
        let e = key.sign(b"x", HashAlgorithm::SHA384, &mut sig);
        assert!(
            matches!(e, Err(CryptoError::SigningKeyHashMismatch { .. })),
            "{e:?}"
        );
        let e = check(b"x", &sig, HashAlgorithm::SHA256);
        assert!(e.is_err());
        assert!(
            P256Verifier
                .verify_signature(
                    b"not DER",
                    b"x",
                    &sig,
                    HashAlgorithm::SHA256,
                    SignatureAlgorithm::ECDSA
                )
                .is_err()
        );
    }

    #[test]
    fn p384_is_refused_with_an_error() {
        let (cert, key) = cert_and_key(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert!(matches!(
            P256Keys.load_private_key(&key),
            Err(CryptoError::InvalidPrivateKey)
        ));
        // A P-384 peer's signature, checked as P-256: refused, not misread.
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &key,
            &SystemRandom::new(),
        )
        .unwrap();
        let sig = pair.sign(&SystemRandom::new(), b"data").unwrap();
        let e = P256Verifier.verify_signature(
            &cert,
            b"data",
            sig.as_ref(),
            HashAlgorithm::SHA384,
            SignatureAlgorithm::ECDSA,
        );
        assert!(e.is_err(), "{e:?}");
    }

    #[test]
    fn key_exchange_agrees_and_refuses_a_point_off_the_curve() {
        let a = P256Kx.start_exchange(Buf::new()).unwrap();
        let b = P256Kx.start_exchange(Buf::new()).unwrap();
        assert_eq!(a.pub_key().len(), 65);
        assert_eq!(a.pub_key()[0], 4, "uncompressed point");
        let (pa, pb) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        let (mut sa, mut sb) = (Buf::new(), Buf::new());
        a.complete(&pb, &mut sa).unwrap();
        b.complete(&pa, &mut sb).unwrap();
        assert_eq!(sa.as_ref(), sb.as_ref());
        assert_eq!(sa.len(), 32);
        let c = P256Kx.start_exchange(Buf::new()).unwrap();
        let mut off = pa.clone();
        off[64] ^= 1;
        let e = c.complete(&off, &mut sa);
        assert!(
            matches!(e, Err(CryptoError::InvalidPublicKey(NamedGroup::Secp256r1))),
            "{e:?}"
        );
    }
}
