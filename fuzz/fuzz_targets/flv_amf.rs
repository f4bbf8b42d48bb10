//! Decoders of server-sent and recorded bytes: AMF0, the RTMP chunk reader
//! (with server-chosen chunk sizes), and the FLV reader. No panic; what
//! AMF0 decodes re-encodes to bytes that decode to the same values.
#![no_main]

use edgestream::flv::read;
use edgestream::rtmp::amf0;
use edgestream::rtmp::chunk::{ChunkReader, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let again = amf0::encode_all(&values);
        let back = amf0::decode_all(&again).expect("re-encoded AMF0 decodes");
        assert_eq!(format!("{back:?}"), format!("{values:?}"));
    }
    let mut r = ChunkReader::new(Limits {
        max_message: 64 * 1024,
        max_chunk_streams: 8,
    });
    for piece in data.chunks(97) {
        r.push(piece);
        loop {
            match r.next_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= 64 * 1024);
                    if m.type_id == 1 && m.payload.len() >= 4 {
                        let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                        if r.set_chunk_size(size).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = read::parse(data);
});
