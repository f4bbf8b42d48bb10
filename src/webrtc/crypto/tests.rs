//! Known answers from the RFCs for each primitive, and a DTLS handshake
//! between two dimpl instances with our certificate, in memory.

use std::time::{Duration, Instant};

use str0m::config::DtlsVersion;
use str0m::crypto::dtls::{DtlsInstance, DtlsOutput};

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hmac_sha1_matches_rfc_2202() {
    // Test case 2, given in two pieces as STUN does.
    let mac = Hashes.sha1_hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
    assert_eq!(
        mac.to_vec(),
        hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
}

#[test]
fn sha256_matches_fips_180() {
    assert_eq!(
        Hashes.sha256(b"abc").to_vec(),
        hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

#[test]
fn aes_cm_matches_rfc_3711_b2() {
    let p = provider();
    let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
    let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
    // Encrypting zeros gives the key stream; the output may be longer
    // than the input (str0m pads it), the rest stays untouched.
    let mut out = [0xaa; 48 + 15];
    let mut enc = p
        .srtp_provider
        .aes_128_cm_sha1_80()
        .create_cipher(key, true);
    enc.encrypt(&iv, &[0; 48], &mut out).unwrap();
    assert_eq!(
        out[..48].to_vec(),
        hex(
            "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0"
        )
    );
    assert_eq!(out[48..], [0xaa; 15]);
    let mut back = [0; 48];
    let mut dec = p
        .srtp_provider
        .aes_128_cm_sha1_80()
        .create_cipher(key, false);
    dec.decrypt(&iv, &out[..48], &mut back).unwrap();
    assert_eq!(back, [0; 48]);
    assert!(enc.encrypt(&iv, &[0; 48], &mut [0; 47]).is_err());
}

#[test]
fn key_derivation_round_matches_rfc_3711_b3() {
    // The cipher key for label 0 at index 0: one AES block of the
    // master salt (label and index XORed in, zero here).
    let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let x = hex("0EC675AD498AFEEBB6960B3AABE60000");
    let mut out = [0; 32];
    provider()
        .srtp_provider
        .srtp_aes_128_ecb_round(&master, &x, &mut out);
    assert_eq!(out[..16].to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
}

#[test]
fn aes_gcm_matches_rfc_7714_16_1() {
    // RFC 7714 section 16.1.1: AEAD_AES_128_GCM over an RTP packet, the
    // header as associated data.
    let key: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
    let iv: [u8; 12] = hex("51753c6580c2726f20718414").try_into().unwrap();
    let aad = hex("8040f17b8041f8d35501a0b2");
    let plain = b"Gallia est omnis divisa in partes tres.".to_vec();
    let expect = hex(
        "f24de3a3fb34de6cacba861c9d7e4bca be633bd50d294e6f42a5f47a51c7d19b
         36de3adf8833 243ef1d27ab57f8c91169da0d906368e46",
    );
    let p = provider();
    let mut enc = p.srtp_provider.aead_aes_128_gcm().create_cipher(key, true);
    let mut out = vec![0; plain.len() + 16];
    enc.encrypt(&iv, &aad, &plain, &mut out).unwrap();
    assert_eq!(out, expect);

    let mut dec = p.srtp_provider.aead_aes_128_gcm().create_cipher(key, false);
    let mut back = vec![0; plain.len()];
    // The associated data may come in pieces.
    let n = dec
        .decrypt(&iv, &[&aad[..5], &aad[5..]], &out, &mut back)
        .unwrap();
    assert_eq!((n, &back), (plain.len(), &plain));
    let mut bad = out.clone();
    bad[3] ^= 1;
    assert!(dec.decrypt(&iv, &[&aad], &bad, &mut back).is_err());
    assert!(dec.decrypt(&iv, &[&aad], &out[..15], &mut back).is_err());
}

#[test]
fn certificates_differ_and_carry_the_serial() {
    let a = certificate([1; 16]).unwrap();
    let b = certificate([2; 16]).unwrap();
    assert_ne!(a.private_key, b.private_key);
    // DER: the serial INTEGER follows the version, early in the TBS.
    let serial = [&[0x02, 16][..], &[1; 16]].concat();
    assert!(a.certificate.windows(18).take(40).any(|w| w == serial));
}

/// Runs a DTLS 1.2 client and server (both ours, our certificates) until
/// both are connected with the same SRTP keys; virtual time.
#[test]
fn dtls_handshake_between_two_instances() {
    let p = provider();
    let start = Instant::now();
    let mk = |serial, active| {
        let cert = certificate([serial; 16]).unwrap();
        let mut d = p
            .dtls_provider
            .new_dtls(&cert, start, DtlsVersion::Dtls12, None)
            .unwrap();
        d.set_active(active);
        d
    };
    let mut client = mk(1, true);
    let mut server = mk(2, false);
    let mut keys: [Option<Vec<u8>>; 2] = [None, None];
    let mut now = start;
    client.handle_timeout(now).unwrap();
    for _ in 0..200 {
        pump(0, client.as_mut(), server.as_mut(), &mut keys);
        pump(1, server.as_mut(), client.as_mut(), &mut keys);
        if keys.iter().all(Option::is_some) {
            break;
        }
        now += Duration::from_millis(10);
        client.handle_timeout(now).unwrap();
        server.handle_timeout(now).unwrap();
    }
    let [Some(a), Some(b)] = keys else {
        panic!("no handshake: {keys:?}");
    };
    assert_eq!(a, b);
    assert!(a.len() >= 2 * (16 + 14), "{}", a.len());
}

fn pump(
    i: usize,
    from: &mut dyn DtlsInstance,
    to: &mut dyn DtlsInstance,
    keys: &mut [Option<Vec<u8>>; 2],
) {
    let mut buf = vec![0; 2000];
    let mut out = Vec::new();
    loop {
        match from.poll_output(&mut buf) {
            DtlsOutput::Packet(p) => out.push(p.to_vec()),
            DtlsOutput::KeyingMaterial(k, _) => keys[i] = Some(k.to_vec()),
            DtlsOutput::Timeout(_) => break,
            DtlsOutput::BufferTooSmall { needed } => buf.resize(needed, 0),
            _ => {}
        }
    }
    for p in out {
        to.handle_packet(&p).unwrap();
    }
}
