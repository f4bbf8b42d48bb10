//! RFC 4571 framing for ICE-TCP: each STUN, DTLS or SRTP packet on the
//! stream is preceded by its length as 16 bits, big-endian. Sans-IO: bytes
//! in, whole packets out.

/// Splits a TCP byte stream into packets.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one has arrived. Empty frames (allowed,
    /// and meaningless) are skipped.
    pub fn next_packet(&mut self) -> Option<Vec<u8>> {
        loop {
            let len = usize::from(u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]));
            if self.buf.len() < 2 + len {
                return None;
            }
            let packet = self.buf[2..2 + len].to_vec();
            self.buf.drain(..2 + len);
            if !packet.is_empty() {
                return Some(packet);
            }
        }
    }
}

/// `packet` with its length in front, or None for one over 65535 bytes.
pub fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut out = Vec::with_capacity(2 + packet.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_out_whole_however_the_stream_is_split() {
        let packets: [&[u8]; 4] = [b"stun binding", b"", &[0x80; 1200], b"x"];
        let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p).unwrap()).collect();
        let want: Vec<&[u8]> = packets.iter().copied().filter(|p| !p.is_empty()).collect();
        for at in 0..=stream.len() {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for part in [&stream[..at], &stream[at..]] {
                d.push(part);
                while let Some(p) = d.next_packet() {
                    got.push(p);
                }
            }
            assert_eq!(got, want, "split at {at}");
        }
    }

    #[test]
    fn a_partial_packet_waits() {
        let mut d = Deframer::default();
        d.push(&[0, 5, b'a', b'b']);
        assert_eq!(d.next_packet(), None);
        d.push(b"cde");
        assert_eq!(d.next_packet().as_deref(), Some(&b"abcde"[..]));
        assert!(frame(&vec![0; 65536]).is_none());
    }
}
