//! The structured header parsers (Transport, Session, Range, Authorization)
//! on arbitrary text: no panic; the authenticator never accepts a request
//! it was not given valid credentials for.
#![no_main]

use std::time::Instant;

use edgestream::rtsp::auth::{Authenticator, Outcome, User, parse_params};
use edgestream::rtsp::headers::{parse_range, parse_session, parse_transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_transport(text);
    let _ = parse_session(text);
    let _ = parse_range(text);
    let _ = parse_params(text);
    let _ = User::parse(text);
    let now = Instant::now();
    let auth = Authenticator::new(vec![User::parse("viewer:pw").unwrap()], true, [3; 32], now);
    // Whatever the header, a fuzzer cannot produce a valid MAC'd nonce
    // plus a matching digest by chance; Basic with the right password is
    // the one way in.
    match auth.check("DESCRIBE", "rtsp://h/live", Some(text), now) {
        Outcome::Ok(_) | Outcome::Stale(_) => {
            assert!(
                text.trim_start().to_ascii_lowercase().starts_with("basic"),
                "{text:?}"
            );
        }
        Outcome::Denied(_) => {}
    }
});
