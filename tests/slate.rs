//! The "no signal" slate with no camera at all: DESCRIBE answers at once
//! (the SDP comes from the slate), an RTSP viewer decodes the card at about
//! 2 fps starting with a keyframe, and a push target publishes it to nginx.
//! The camera coming back (and a size change) is covered by the pipeline's
//! unit tests and, with a real driver, by tests/vivid.rs.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn no_camera_describe_at_once_slate_plays_and_is_pushed() {
    let dir = temp_dir("slate");
    let port = free_port();
    let mut nginx = Nginx::start(&dir, port);
    let missing = "/dev/video-edgestream-test-missing";
    let es = Edgestream::start(&[
        "--source",
        missing,
        "--size",
        "320x240",
        "--push",
        &format!("rtmp://127.0.0.1:{port}/live/cam"),
    ]);
    let t = Instant::now();
    let mut c = RawClient::connect(&es.addr());
    let (code, resp) = c
        .request(&format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n",
            es.url
        ))
        .expect("no answer to DESCRIBE");
    let took = t.elapsed();
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("sprop-parameter-sets="), "{resp}");
    assert!(took < Duration::from_secs(1), "DESCRIBE took {took:?}");
    drop(c);

    let rec = dir.join("slate.mkv");
    ffmpeg_record(&es.url, "tcp", 4, &rec);
    let frames = probe_frames(&rec);
    assert!(
        (5..=12).contains(&frames.len()),
        "{} frames in 4 s: {frames:?}",
        frames.len()
    );
    assert!(frames[0].0, "starts with a keyframe: {frames:?}");
    assert_eq!(probe_size(&rec), (320, 240));
    assert_eq!(decode_errors(&rec), "");

    assert!(
        es.wait_lines(": publishing", 1, Duration::from_secs(10))
            .is_some(),
        "{}",
        es.log_text()
    );
    let log = es.log_text();
    assert!(
        log.contains(&format!("camera {missing} is not there")),
        "{log}"
    );
    assert!(es.stop().success());
    nginx.stop();
    let flv = dir.join("rec").join("cam.flv");
    let pushed = probe_frames(&flv);
    assert!(pushed.len() >= 4, "{} frames pushed", pushed.len());
    assert!(pushed[0].0);
    assert_eq!(decode_errors(&flv), "");
    std::fs::remove_dir_all(dir).ok();
}
