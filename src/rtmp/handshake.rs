//! The RTMP handshake, client side (Adobe RTMP specification 1.0, §5.2):
//! C0+C1 out, S0+S1+S2 in, C2 (an echo of S1) out.
//!
//! This is the plain handshake ffmpeg uses for `rtmp://`: nginx-rtmp, SRS,
//! MediaMTX, Wowza and YouTube accept it. Pure code: the caller supplies the
//! random bytes and the time.

use std::fmt;

pub const VERSION: u8 = 3;
pub const PACKET_SIZE: usize = 1536;

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// S0 was not version 3. `preview` holds the first bytes received, for
    /// telling an HTTP or TLS server from a broken RTMP one.
    NotRtmp { version: u8, preview: Vec<u8> },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRtmp { version, preview } => {
                let text = preview.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
                if text && !preview.is_empty() {
                    write!(
                        f,
                        "the server answered {:?}, not an RTMP handshake (is this an RTMP port?)",
                        String::from_utf8_lossy(preview)
                    )
                } else if *version == 0x16 {
                    f.write_str("the server answered with TLS; rtmps:// is not supported")
                } else {
                    write!(
                        f,
                        "the server answered handshake version {version}, not RTMP version 3 (is this an RTMP port?)"
                    )
                }
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The client's half of the handshake.
#[derive(Debug)]
pub struct Handshake {
    received: Vec<u8>,
}

/// Handshake progress after some input.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes needed.
    Pending,
    /// Done: send `c2`; `rest` are bytes after S2 (already chunk stream).
    Done { c2: Vec<u8>, rest: Vec<u8> },
}

impl Handshake {
    /// Starts the handshake; returns it and C0+C1 to send. `epoch_ms` goes
    /// into C1's time field; `random` fills the rest of C1.
    pub fn start(epoch_ms: u32, random: &[u8; PACKET_SIZE - 8]) -> (Self, Vec<u8>) {
        let mut out = Vec::with_capacity(1 + PACKET_SIZE);
        out.push(VERSION);
        out.extend_from_slice(&epoch_ms.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(random);
        (
            Self {
                received: Vec::new(),
            },
            out,
        )
    }

    /// Takes bytes from the server.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Progress, HandshakeError> {
        let need = 1 + 2 * PACKET_SIZE;
        let take = bytes.len().min(need - self.received.len());
        self.received.extend_from_slice(&bytes[..take]);
        if let Some(&version) = self.received.first() {
            if version != VERSION {
                let preview: Vec<u8> = self
                    .received
                    .iter()
                    .copied()
                    .take_while(|b| *b != b'\r' && *b != b'\n')
                    .take(40)
                    .collect();
                return Err(HandshakeError::NotRtmp { version, preview });
            }
        }
        if self.received.len() < need {
            return Ok(Progress::Pending);
        }
        // C2 echoes S1: its time, then our read time (0 is allowed), then
        // its random bytes. S2 is not checked, as most clients do not.
        let s1 = &self.received[1..1 + PACKET_SIZE];
        let mut c2 = Vec::with_capacity(PACKET_SIZE);
        c2.extend_from_slice(&s1[..4]);
        c2.extend_from_slice(&[0; 4]);
        c2.extend_from_slice(&s1[8..]);
        Ok(Progress::Done {
            c2,
            rest: bytes[take..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_and_echoes_s1() {
        let (mut h, c0c1) = Handshake::start(1234, &[7; PACKET_SIZE - 8]);
        assert_eq!(c0c1.len(), 1 + PACKET_SIZE);
        assert_eq!(&c0c1[..9], &[3, 0, 0, 4, 210, 0, 0, 0, 0]);
        let mut server = vec![3];
        let s1: Vec<u8> = (0..PACKET_SIZE).map(|i| (i * 7) as u8).collect();
        server.extend_from_slice(&s1);
        server.extend_from_slice(&c0c1[1..]);
        server.extend_from_slice(&[0xaa, 0xbb]);
        // In two pieces, split inside S1.
        assert_eq!(h.handle_input(&server[..700]).unwrap(), Progress::Pending);
        match h.handle_input(&server[700..]).unwrap() {
            Progress::Done { c2, rest } => {
                assert_eq!(&c2[..4], &s1[..4]);
                assert_eq!(&c2[8..], &s1[8..]);
                assert_eq!(rest, vec![0xaa, 0xbb]);
            }
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn garbage_is_named() {
        let (mut h, _) = Handshake::start(0, &[0; PACKET_SIZE - 8]);
        let e = h
            .handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .unwrap_err();
        assert!(e.to_string().contains("HTTP/1.1 400 Bad Request"), "{e}");
        let (mut h, _) = Handshake::start(0, &[0; PACKET_SIZE - 8]);
        let e = h.handle_input(&[0x16, 3, 1, 0, 0x80, 2]).unwrap_err();
        assert!(e.to_string().contains("TLS"), "{e}");
        let (mut h, _) = Handshake::start(0, &[0; PACKET_SIZE - 8]);
        let e = h.handle_input(&[6, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("version 6"), "{e}");
    }
}
