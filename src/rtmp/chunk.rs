//! The RTMP chunk stream (Adobe RTMP specification 1.0, §5.3): messages cut
//! into chunks on the way out, chunks put back together on the way in.
//!
//! Pure code. The reader is bounded: it refuses messages larger than
//! [`Limits::max_message`], tracks at most [`Limits::max_chunk_streams`]
//! chunk streams, and buffers at most one chunk beyond what it was given.

use std::fmt;

/// Chunk size both sides start with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// The largest chunk size the protocol allows (31 bits).
pub const MAX_CHUNK_SIZE: usize = 0x7fff_ffff;

/// Message type ids (§5.4, §7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// One RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// Cuts messages into chunks.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

fn put_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let v = (csid.clamp(320, 65599) - 64) as u16;
            out.extend_from_slice(&[fmt << 6 | 1, v as u8, (v >> 8) as u8]);
        }
    }
}

impl ChunkWriter {
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Uses `size` for chunks written from now on. Send a Set Chunk Size
    /// message first (see [`ChunkWriter::set_chunk_size_message`]).
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Writes a Set Chunk Size message at the current size, then switches.
    pub fn set_chunk_size_message(&mut self, size: usize, out: &mut Vec<u8>) {
        let size = size.clamp(1, MAX_CHUNK_SIZE);
        self.write(
            2,
            msg_type::SET_CHUNK_SIZE,
            0,
            0,
            &(size as u32).to_be_bytes(),
            out,
        );
        self.set_chunk_size(size);
    }

    /// Appends one message as chunks: a type-0 header, then type-3 headers
    /// for the continuation chunks (carrying the extended timestamp when
    /// the first did, as ffmpeg and nginx-rtmp expect).
    pub fn write(
        &self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let extended = timestamp >= 0xff_ffff;
        let ts_field = if extended { 0xff_ffff } else { timestamp };
        put_basic_header(out, 0, csid);
        out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        let mut chunks = payload.chunks(self.chunk_size);
        out.extend_from_slice(chunks.next().unwrap_or_default());
        for chunk in chunks {
            put_basic_header(out, 3, csid);
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
            out.extend_from_slice(chunk);
        }
    }
}

/// Size limits for what the reader accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message: usize,
    pub max_chunk_streams: usize,
}

impl Default for Limits {
    /// A publisher only receives small control and command messages.
    fn default() -> Self {
        Self {
            max_message: 128 * 1024,
            max_chunk_streams: 16,
        }
    }
}

/// What was wrong with the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// A message longer than the limit.
    MessageTooLarge { csid: u32, len: usize, limit: usize },
    /// More chunk streams in use than the limit.
    TooManyChunkStreams { limit: usize },
    /// A Set Chunk Size of 0 or above 2^31-1.
    BadChunkSize(u32),
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageTooLarge { csid, len, limit } => write!(
                f,
                "a {len}-byte message on chunk stream {csid} is over the {limit}-byte limit"
            ),
            Self::TooManyChunkStreams { limit } => {
                write!(f, "more than {limit} chunk streams in use")
            }
            Self::BadChunkSize(n) => write!(f, "chunk size {n} is outside 1 to 2147483647"),
        }
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Default)]
struct StreamState {
    csid: u32,
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// The last extended timestamp field read on this stream.
    ext_value: u32,
    partial: Vec<u8>,
}

/// Puts incoming chunks back together into messages.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    chunk_size: usize,
    limits: Limits,
    streams: Vec<StreamState>,
    buf: Vec<u8>,
}

impl ChunkReader {
    pub fn new(limits: Limits) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size as usize > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Applies the peer's Abort Message: drops the partial message.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.csid == csid) {
            s.partial = Vec::new();
        }
    }

    /// Bytes held that do not form a whole chunk yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes bytes from the peer. Call [`ChunkReader::next_message`] until
    /// it returns `None` afterwards (and after every Set Chunk Size).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the buffered bytes hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.next_chunk()? {
                None => return Ok(None),
                Some(Some(m)) => return Ok(Some(m)),
                Some(None) => continue,
            }
        }
    }

    /// Consumes one chunk if whole: `Some(Some(msg))` if it completed a
    /// message, `Some(None)` if not, `None` if more bytes are needed.
    fn next_chunk(&mut self) -> Result<Option<Option<Message>>, ChunkError> {
        let b = &self.buf;
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (u32::from(x) + 64, 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (u32::from(hi) * 256 + u32::from(lo) + 64, 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        if b.len() < pos + header_len {
            return Ok(None);
        }
        let h = &b[pos..pos + header_len];
        let be24 = |x: &[u8]| u32::from(x[0]) << 16 | u32::from(x[1]) << 8 | u32::from(x[2]);
        let index = match self.streams.iter().position(|s| s.csid == csid) {
            Some(i) => i,
            None => {
                // Lenient like ffmpeg's rtmppkt and librtmp: a first chunk
                // with a compressed header (type 1, 2 or 3) takes the fields
                // it lacks as zero. Still counted against the limit.
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams {
                        limit: self.limits.max_chunk_streams,
                    });
                }
                self.streams.push(StreamState {
                    csid,
                    ..StreamState::default()
                });
                self.streams.len() - 1
            }
        };
        let prev = &self.streams[index];
        let mut st = StreamState {
            partial: Vec::new(),
            ..prev.clone()
        };
        let ts_field = if fmt < 3 { be24(&h[0..3]) } else { 0 };
        if fmt <= 1 {
            st.length = be24(&h[3..6]) as usize;
            st.type_id = h[6];
        }
        if fmt == 0 {
            st.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        if fmt < 3 {
            st.extended = ts_field == 0xff_ffff;
        }
        pos += header_len;
        let mut ts_value = ts_field;
        if st.extended {
            let Some(x) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            let value = u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
            // Type-3 chunks after an extended timestamp carry it again
            // (§5.3.1.3, ffmpeg, librtmp) or not (some servers): taken
            // either way, as SRS does, by whether the next four bytes
            // repeat the last extended timestamp.
            if fmt < 3 || value == st.ext_value {
                ts_value = value;
                st.ext_value = value;
                pos += 4;
            }
        }
        if st.length > self.limits.max_message {
            return Err(ChunkError::MessageTooLarge {
                csid,
                len: st.length,
                limit: self.limits.max_message,
            });
        }
        // A full header starts a new message (dropping any unfinished one);
        // a type-3 header continues one if there is one.
        let have = if fmt < 3 { 0 } else { prev.partial.len() };
        let new_message = have == 0;
        let take = (st.length - have.min(st.length)).min(self.chunk_size);
        if b.len() < pos + take {
            return Ok(None);
        }
        // The whole chunk is here: commit the header.
        if new_message {
            match fmt {
                0 => {
                    st.timestamp = ts_value;
                    st.delta = 0;
                }
                1 | 2 => {
                    st.delta = ts_value;
                    st.timestamp = st.timestamp.wrapping_add(ts_value);
                }
                _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
        }
        let payload = b[pos..pos + take].to_vec();
        let consumed = pos + take;
        let stream = &mut self.streams[index];
        let mut partial = std::mem::take(&mut stream.partial);
        if new_message {
            partial.clear();
        }
        *stream = st;
        partial.extend_from_slice(&payload);
        self.buf.drain(..consumed);
        let stream = &mut self.streams[index];
        if partial.len() >= stream.length {
            return Ok(Some(Some(Message {
                csid,
                type_id: stream.type_id,
                stream_id: stream.stream_id,
                timestamp: stream.timestamp,
                payload: partial,
            })));
        }
        stream.partial = partial;
        Ok(Some(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<Message> {
        vec![
            Message {
                csid: 3,
                type_id: msg_type::COMMAND_AMF0,
                stream_id: 0,
                timestamp: 0,
                payload: (0..300u32).map(|i| i as u8).collect(),
            },
            Message {
                csid: 6,
                type_id: msg_type::VIDEO,
                stream_id: 1,
                timestamp: 40,
                payload: vec![7; 5000],
            },
            Message {
                csid: 6,
                type_id: msg_type::VIDEO,
                stream_id: 1,
                timestamp: 0x0100_0000, // extended timestamp
                payload: vec![9; 1000],
            },
            Message {
                csid: 100, // two-byte basic header
                type_id: msg_type::DATA_AMF0,
                stream_id: 1,
                timestamp: 7,
                payload: vec![],
            },
            Message {
                csid: 1000, // three-byte basic header
                type_id: msg_type::DATA_AMF0,
                stream_id: 1,
                timestamp: 8,
                payload: vec![1, 2, 3],
            },
        ]
    }

    fn write_all(chunk_size: usize) -> Vec<u8> {
        let mut w = ChunkWriter::default();
        let mut out = Vec::new();
        if chunk_size != DEFAULT_CHUNK_SIZE {
            w.set_chunk_size_message(chunk_size, &mut out);
        }
        for m in messages() {
            w.write(
                m.csid,
                m.type_id,
                m.stream_id,
                m.timestamp,
                &m.payload,
                &mut out,
            );
        }
        out
    }

    fn read_all(r: &mut ChunkReader, got: &mut Vec<Message>) {
        while let Some(m) = r.next_message().unwrap() {
            if m.type_id == msg_type::SET_CHUNK_SIZE {
                let n = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                r.set_chunk_size(n).unwrap();
            } else {
                got.push(m);
            }
        }
    }

    #[test]
    fn round_trips_at_every_split() {
        for chunk_size in [DEFAULT_CHUNK_SIZE, 4096, 1] {
            let bytes = write_all(chunk_size);
            for split in 0..=bytes.len() {
                // Byte by byte for the small size only: the rest at every split.
                let mut r = ChunkReader::new(Limits::default());
                let mut got = Vec::new();
                r.push(&bytes[..split]);
                read_all(&mut r, &mut got);
                r.push(&bytes[split..]);
                read_all(&mut r, &mut got);
                assert_eq!(got, messages(), "chunk size {chunk_size}, split at {split}");
                assert_eq!(r.buffered(), 0);
                if chunk_size == 1 && split > 50 {
                    break;
                }
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let bytes = write_all(4096);
        let mut r = ChunkReader::new(Limits::default());
        let mut got = Vec::new();
        for b in &bytes {
            r.push(&[*b]);
            read_all(&mut r, &mut got);
        }
        assert_eq!(got, messages());
    }

    #[test]
    fn compressed_headers_carry_over() {
        // Type 0, then type 1 (new length/type, delta 10), type 2 (delta 5),
        // type 3 (same again), as servers send them.
        let bytes = [
            &[0x03, 0, 0, 100, 0, 0, 2, 20, 1, 0, 0, 0, 0xaa, 0xbb][..],
            &[0x43, 0, 0, 10, 0, 0, 1, 18, 0xcc],
            &[0x83, 0, 0, 5, 0xdd],
            &[0xc3, 0xee],
        ]
        .concat();
        let mut r = ChunkReader::new(Limits::default());
        r.push(&bytes);
        let mut got = Vec::new();
        read_all(&mut r, &mut got);
        let summary: Vec<_> = got
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.stream_id, m.payload.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (100, 20, 1, vec![0xaa, 0xbb]),
                (110, 18, 1, vec![0xcc]),
                (115, 18, 1, vec![0xdd]),
                (120, 18, 1, vec![0xee]),
            ]
        );
    }

    #[test]
    fn limits_are_enforced() {
        let mut w = ChunkWriter::default();
        let mut out = Vec::new();
        w.set_chunk_size(1 << 20);
        w.write(3, 20, 0, 0, &vec![0; 200_000], &mut out);
        let mut r = ChunkReader::new(Limits::default());
        r.push(&out[..20]);
        assert!(matches!(
            r.next_message(),
            Err(ChunkError::MessageTooLarge { len: 200_000, .. })
        ));

        let mut r = ChunkReader::new(Limits {
            max_message: 100,
            max_chunk_streams: 2,
        });
        let mut out = Vec::new();
        for csid in [3, 4, 5] {
            w.write(csid, 20, 0, 0, &[1], &mut out);
        }
        r.push(&out);
        assert!(r.next_message().unwrap().is_some());
        assert!(r.next_message().unwrap().is_some());
        assert_eq!(
            r.next_message().unwrap_err(),
            ChunkError::TooManyChunkStreams { limit: 2 }
        );

        let mut r = ChunkReader::new(Limits::default());
        assert!(r.set_chunk_size(0).is_err());
        assert!(r.set_chunk_size(0x8000_0000).is_err());
    }

    #[test]
    fn abort_drops_a_partial_message() {
        let w = ChunkWriter::default();
        let mut out = Vec::new();
        w.write(4, 9, 1, 0, &[5; 200], &mut out);
        let mut r = ChunkReader::new(Limits::default());
        r.push(&out[..12 + 128]);
        assert!(r.next_message().unwrap().is_none());
        r.abort(4);
        let mut out = Vec::new();
        w.write(4, 9, 1, 33, &[6; 10], &mut out);
        r.push(&out);
        let m = r.next_message().unwrap().unwrap();
        assert_eq!((m.timestamp, m.payload), (33, vec![6; 10]));
    }

    #[test]
    fn a_first_compressed_header_takes_missing_fields_as_zero() {
        // Type 1 on a new chunk stream (the independent server of issue
        // 11): stream id 0, timestamp 0 + delta.
        let mut r = ChunkReader::new(Limits::default());
        r.push(&[0x43, 0, 0, 7, 0, 0, 2, 20, 0xaa, 0xbb]);
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(
            (m.csid, m.timestamp, m.type_id, m.stream_id, m.payload),
            (3, 7, 20, 0, vec![0xaa, 0xbb])
        );
        // Type 2 and type 3 first: length 0 and type 0, an empty message
        // the session skips; the bytes after are read as the next chunk.
        let mut r = ChunkReader::new(Limits::default());
        r.push(&[
            0x84, 0, 0, 9, 0xc5, 0x06, 0, 0, 0, 0, 0, 1, 20, 0, 0, 0, 0, 0x55,
        ]);
        let got: Vec<_> = std::iter::from_fn(|| r.next_message().unwrap())
            .map(|m| (m.csid, m.timestamp, m.type_id, m.payload.len()))
            .collect();
        assert_eq!(got, vec![(4, 9, 0, 0), (5, 0, 0, 0), (6, 0, 20, 1)]);
        // Still bounded: each new chunk stream counts.
        let mut r = ChunkReader::new(Limits {
            max_message: 100,
            max_chunk_streams: 2,
        });
        r.push(&[0xc3, 0xc4, 0xc5]);
        assert!(r.next_message().unwrap().is_some());
        assert!(r.next_message().unwrap().is_some());
        assert_eq!(
            r.next_message().unwrap_err(),
            ChunkError::TooManyChunkStreams { limit: 2 }
        );
    }

    /// A 200-byte message at chunk size 128 with an extended timestamp,
    /// its type-3 continuation with or without the 4-byte field.
    fn extended(repeat: bool) -> Vec<u8> {
        let mut b = vec![0x04, 0xff, 0xff, 0xff, 0, 0, 200, 9, 1, 0, 0, 0];
        b.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        b.extend_from_slice(&[1; 128]);
        b.push(0xc4);
        if repeat {
            b.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        }
        b.extend_from_slice(&[2; 72]);
        b
    }

    #[test]
    fn extended_timestamps_in_type_3_chunks_either_way() {
        for repeat in [true, false] {
            let bytes = extended(repeat);
            // Whole, and a byte at a time.
            for step in [bytes.len(), 1] {
                let mut r = ChunkReader::new(Limits::default());
                let mut got = Vec::new();
                for piece in bytes.chunks(step) {
                    r.push(piece);
                    while let Some(m) = r.next_message().unwrap() {
                        got.push(m);
                    }
                }
                assert_eq!(got.len(), 1, "repeat {repeat}, step {step}");
                let m = &got[0];
                assert_eq!(m.timestamp, 0x0100_0000);
                assert_eq!(m.payload.len(), 200);
                assert_eq!(&m.payload[..128], &[1; 128][..]);
                assert_eq!(&m.payload[128..], &[2; 72][..], "repeat {repeat}");
                assert_eq!(r.buffered(), 0);
            }
        }
    }

    #[test]
    fn unknown_message_types_come_through_for_the_session_to_skip() {
        let w = ChunkWriter::default();
        let mut out = Vec::new();
        w.write(3, 0x33, 0, 0, &[1, 2, 3], &mut out);
        w.write(3, 20, 0, 0, &[4], &mut out);
        let mut r = ChunkReader::new(Limits::default());
        r.push(&out);
        assert_eq!(r.next_message().unwrap().unwrap().type_id, 0x33);
        assert_eq!(r.next_message().unwrap().unwrap().payload, vec![4]);
    }
}
