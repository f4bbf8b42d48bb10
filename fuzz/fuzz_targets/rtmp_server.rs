//! The RTMP publish session fed arbitrary server bytes after a valid
//! handshake, in pieces whose sizes the input chooses: no panic, bounded
//! buffering, and once publishing it accepts metadata and video.
#![no_main]

use edgestream::rtmp::handshake::PACKET_SIZE;
use edgestream::rtmp::session::{Event, Phase, PublishParams, PublishSession};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut s = PublishSession::new(
        PublishParams {
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1/live".into(),
            stream: "cam?key=1".into(),
        },
        &[7; PACKET_SIZE - 8],
    );
    let mut server = vec![3u8];
    server.extend((0..2 * PACKET_SIZE).map(|i| (i % 251) as u8));
    if s.handle_input(&server).is_err() {
        return;
    }
    let step = usize::from(split).max(1);
    for piece in data.chunks(step) {
        if s.handle_input(piece).is_err() {
            return;
        }
        let _ = s.take_output();
        while let Some(ev) = s.poll_event() {
            if ev == Event::PublishStarted {
                assert_eq!(s.phase(), Phase::Published);
                s.send_metadata(b"\x02\x00\x0aonMetaData").unwrap();
                s.send_video(40, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]).unwrap();
            }
        }
    }
    s.close();
    let _ = s.take_output();
});
