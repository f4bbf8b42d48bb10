//! SRTP's ciphers for str0m: AES-CM (with str0m's HMAC-SHA1-80 around it)
//! and AEAD AES-GCM (RFC 7714), 128 and 256 bits. str0m does the framing
//! (IVs, tags' place, replay); these only run the block ciphers over the
//! buffers it sizes.

use aes::cipher::consts::{U12, U16};
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, BlockSizeUser, KeyInit, KeyIvInit, StreamCipher};
use aes_gcm::aead::{AeadCore, AeadInPlace};
use str0m::crypto::{
    AeadAes128GcmCipher, AeadAes256GcmCipher, Aes128CmSha1_80Cipher, CryptoError, SrtpProvider,
    SupportedAeadAes128Gcm, SupportedAeadAes256Gcm, SupportedAes128CmSha1_80,
};

const TAG_LEN: usize = 16;

#[derive(Debug)]
pub(super) struct Srtp;

impl SrtpProvider for Srtp {
    fn aes_128_cm_sha1_80(&self) -> &'static dyn SupportedAes128CmSha1_80 {
        &Factory
    }

    fn aead_aes_128_gcm(&self) -> &'static dyn SupportedAeadAes128Gcm {
        &Factory
    }

    fn aead_aes_256_gcm(&self) -> &'static dyn SupportedAeadAes256Gcm {
        &Factory
    }

    fn srtp_aes_128_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        ecb_round::<aes::Aes128>(key, input, output);
    }

    fn srtp_aes_256_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        ecb_round::<aes::Aes256>(key, input, output);
    }
}

/// One AES block of `input` into the start of `output` (the SRTP key
/// derivation's counter mode, one round at a time). str0m passes a
/// master key of the cipher's size, a 16-byte input and a larger output;
/// anything else leaves `output` as it is.
fn ecb_round<C: KeyInit + BlockEncrypt + BlockSizeUser<BlockSize = U16>>(
    key: &[u8],
    input: &[u8],
    output: &mut [u8],
) {
    let (Ok(cipher), Some(input), Some(out)) = (
        C::new_from_slice(key),
        input.get(..16),
        output.get_mut(..16),
    ) else {
        return;
    };
    out.copy_from_slice(input);
    cipher.encrypt_block(GenericArray::from_mut_slice(out));
}

#[derive(Debug)]
struct Factory;

impl SupportedAes128CmSha1_80 for Factory {
    fn create_cipher(&self, key: [u8; 16], _encrypt: bool) -> Box<dyn Aes128CmSha1_80Cipher> {
        Box::new(AesCm { key })
    }
}

impl SupportedAeadAes128Gcm for Factory {
    fn create_cipher(&self, key: [u8; 16], _encrypt: bool) -> Box<dyn AeadAes128GcmCipher> {
        Box::new(Gcm(aes_gcm::Aes128Gcm::new(&key.into())))
    }
}

impl SupportedAeadAes256Gcm for Factory {
    fn create_cipher(&self, key: [u8; 32], _encrypt: bool) -> Box<dyn AeadAes256GcmCipher> {
        Box::new(Gcm(aes_gcm::Aes256Gcm::new(&key.into())))
    }
}

/// AES-128 in counter mode: encrypting and decrypting are one XOR with the
/// key stream that starts at the IV.
struct AesCm {
    key: [u8; 16],
}

impl std::fmt::Debug for AesCm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesCm")
    }
}

impl AesCm {
    fn apply(&self, iv: &[u8; 16], input: &[u8], output: &mut [u8]) -> Result<(), CryptoError> {
        let have = output.len();
        let out = output
            .get_mut(..input.len())
            .ok_or_else(|| short("AES-CM", input.len(), have))?;
        out.copy_from_slice(input);
        ctr::Ctr128BE::<aes::Aes128>::new(&self.key.into(), iv.into()).apply_keystream(out);
        Ok(())
    }
}

impl Aes128CmSha1_80Cipher for AesCm {
    fn encrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.apply(iv, input, output)
    }

    fn decrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        self.apply(iv, input, output)
    }
}

/// AES-GCM: the cipher text, then its 16-byte tag.
struct Gcm<C>(C);

impl<C> std::fmt::Debug for Gcm<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gcm")
    }
}

impl<C: AeadInPlace + AeadCore<NonceSize = U12, TagSize = U16>> Gcm<C> {
    /// `output` gets the cipher text of `input` and the tag after it.
    fn seal(
        &self,
        iv: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        let (n, have) = (input.len(), output.len());
        let out = output
            .get_mut(..n + TAG_LEN)
            .ok_or_else(|| short("AES-GCM", n + TAG_LEN, have))?;
        let (text, tag) = out.split_at_mut(n);
        text.copy_from_slice(input);
        let sealed = self
            .0
            .encrypt_in_place_detached(GenericArray::from_slice(iv), aad, text)
            .map_err(|_| CryptoError::Other("AES-GCM cannot seal this packet".into()))?;
        tag.copy_from_slice(&sealed);
        Ok(())
    }

    /// `input` is cipher text and tag; `output` gets the plain text, whose
    /// length is returned. The associated data comes in pieces.
    fn open(
        &self,
        iv: &[u8; 12],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let n = input
            .len()
            .checked_sub(TAG_LEN)
            .ok_or_else(|| short("AES-GCM input", TAG_LEN, input.len()))?;
        let (text, tag) = input.split_at(n);
        let have = output.len();
        let out = output
            .get_mut(..n)
            .ok_or_else(|| short("AES-GCM", n, have))?;
        out.copy_from_slice(text);
        let aad: std::borrow::Cow<[u8]> = match aads {
            [one] => (*one).into(),
            many => many.concat().into(),
        };
        self.0
            .decrypt_in_place_detached(
                GenericArray::from_slice(iv),
                &aad,
                out,
                GenericArray::from_slice(tag),
            )
            .map_err(|_| CryptoError::Other("AES-GCM tag does not match".into()))?;
        Ok(n)
    }
}

/// str0m has one trait per key size, with the same methods.
macro_rules! gcm_cipher {
    ($trait:ident, $cipher:ty) => {
        impl $trait for Gcm<$cipher> {
            fn encrypt(
                &mut self,
                iv: &[u8; 12],
                aad: &[u8],
                input: &[u8],
                output: &mut [u8],
            ) -> Result<(), CryptoError> {
                self.seal(iv, aad, input, output)
            }

            fn decrypt(
                &mut self,
                iv: &[u8; 12],
                aads: &[&[u8]],
                input: &[u8],
                output: &mut [u8],
            ) -> Result<usize, CryptoError> {
                self.open(iv, aads, input, output)
            }
        }
    };
}

gcm_cipher!(AeadAes128GcmCipher, aes_gcm::Aes128Gcm);
gcm_cipher!(AeadAes256GcmCipher, aes_gcm::Aes256Gcm);

fn short(what: &str, need: usize, have: usize) -> CryptoError {
    CryptoError::Other(format!("{what} buffer of {have} bytes, {need} needed"))
}
