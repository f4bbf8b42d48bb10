//! The RTSP message parser on arbitrary bytes: no panic, and every complete
//! message consumes at least one byte and no more than it was given. The
//! same bytes fed in two pieces must give the same first message.
#![no_main]

use edgestream::rtsp::parse::{Limits, Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_header_bytes: 1024,
        max_body_bytes: 256,
        max_uri_bytes: 256,
    };
    let mut rest = data;
    while !rest.is_empty() {
        match parse(rest, &limits) {
            Ok(Parsed::Complete(msg, n)) => {
                assert!(n > 0 && n <= rest.len());
                // Every strict prefix of a complete message is incomplete.
                if n > 1 {
                    assert_eq!(
                        parse(&rest[..n - 1], &limits),
                        Ok(Parsed::Incomplete),
                        "{msg:?}"
                    );
                }
                rest = &rest[n..];
            }
            Ok(Parsed::Incomplete) => break,
            Err(e) => {
                assert!(e.pos <= rest.len().max(limits.max_header_bytes));
                let _ = e.to_string();
                break;
            }
        }
    }
});
