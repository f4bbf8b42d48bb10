//! End-to-end: the real binary streaming the test pattern, played by real
//! RTSP clients (ffmpeg, retina) on loopback.

mod common;

use std::time::Duration;

use common::*;

const FPS: u32 = 30;

fn record_and_check(transport: &str) {
    let es = Edgestream::start(&["--size", "320x240", "--fps", "30"]);
    let dir = temp_dir(&format!("ffmpeg-{transport}"));
    let out = dir.join("rec.mkv");
    ffmpeg_record(&es.url, transport, 5, &out);
    let errors = decode_errors(&out);
    assert!(
        errors.is_empty(),
        "decode errors over {transport}:\n{errors}"
    );
    let frames = probe_frames(&out);
    let expected = 5 * FPS as usize;
    assert!(
        frames.len() * 100 >= expected * 95,
        "{transport}: {} frames, expected at least 95% of {expected}",
        frames.len()
    );
    assert!(
        frames[0].0 && frames[0].1 == "I",
        "{transport}: first frame {:?}",
        frames[0]
    );
    assert_eq!(probe_size(&out), (320, 240));
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ffmpeg_records_over_tcp() {
    record_and_check("tcp");
}

#[test]
fn ffmpeg_records_over_udp() {
    record_and_check("udp");
}

#[test]
fn retina_plays_over_tcp_and_udp_with_sender_reports() {
    let es = Edgestream::start(&["--size", "320x240"]);
    for transport in ["tcp", "udp"] {
        let v = block_on(retina_view(&es.url, transport, 6.0))
            .unwrap_or_else(|e| panic!("{transport}: {e}"));
        assert!(v.first_is_key, "{transport}: first frame is not a keyframe");
        assert!(
            v.frames >= 150,
            "{transport}: only {} frames in 6 s",
            v.frames
        );
        assert!(
            v.sender_reports >= 2,
            "{transport}: {} RTCP sender reports in 6 s",
            v.sender_reports
        );
    }
    assert!(es.stop().success());
}

#[test]
fn sixteen_viewers_at_once() {
    // All from 127.0.0.1: lift the per-address connection limit (10).
    let es = Edgestream::start(&["--size", "320x240", "--max-connections-per-ip", "16"]);
    let url = es.url.clone();
    let results = block_on(async move {
        let views = (0..16).map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let transport = if i % 2 == 0 { "tcp" } else { "udp" };
                retina_view(&url, transport, 4.0).await
            })
        });
        futures::future::join_all(views).await
    });
    for (i, r) in results.into_iter().enumerate() {
        let v = r.unwrap().unwrap_or_else(|e| panic!("viewer {i}: {e}"));
        assert!(v.first_is_key, "viewer {i}: first frame not a keyframe");
        assert!(
            v.frames >= 90,
            "viewer {i}: only {} frames in 4 s",
            v.frames
        );
    }
    assert!(es.stop().success());
}

#[test]
fn a_viewer_that_never_reads_does_not_stall_the_others() {
    // A high bitrate fills the stalled viewer's socket buffers quickly.
    let es = Edgestream::start(&["--size", "640x480", "--bitrate", "8000"]);
    let addr = es.addr();
    let stalled = {
        // A tiny receive window, and nothing read after PLAY.
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&addr.parse::<std::net::SocketAddr>().unwrap().into())
            .unwrap();
        let mut c = RawClient::from_stream(s.into());
        let session = c.setup_tcp(&addr);
        c.send_play(&addr, &session, "");
        c
    };
    let v = block_on(retina_view(&es.url, "tcp", 14.0)).unwrap();
    assert!(
        v.frames >= 14 * 25,
        "the healthy viewer got {} frames in 14 s",
        v.frames
    );
    assert!(
        v.max_gap < Duration::from_secs(1),
        "the healthy viewer waited {:?}",
        v.max_gap
    );
    // The stalled viewer lost frames, and its connection was closed once
    // writes made no progress.
    let log = es.log_text();
    assert!(
        log.contains("no write progress"),
        "stalled viewer not cut off:\n{log}"
    );
    drop(stalled);
    assert!(es.stop().success());
}

#[test]
fn malformed_requests_get_errors_while_another_viewer_plays() {
    let es = Edgestream::start(&["--size", "320x240"]);
    let addr = es.addr();
    let url = es.url.clone();
    let viewer = std::thread::spawn(move || block_on(retina_view(&url, "tcp", 6.0)));
    std::thread::sleep(Duration::from_millis(500));

    // Garbage: 400 and the connection closes.
    let mut c = RawClient::connect(&addr);
    let (status, _) = c.request("\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap();
    assert_eq!(status, 400);
    assert!(c.closed_within(Duration::from_secs(5)));

    // An oversized header block: 400 and closed.
    let mut c = RawClient::connect(&addr);
    let mut big = format!("OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 1\r\n");
    while big.len() < 9000 {
        big.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    c.send(big.as_bytes());
    let (status, _) = c.response().unwrap();
    assert_eq!(status, 400);
    assert!(c.closed_within(Duration::from_secs(5)));

    // An unknown method: 501, and the connection still works.
    let mut c = RawClient::connect(&addr);
    let (status, _) = c
        .request(&format!(
            "BREW rtsp://{addr}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 501);
    let (status, _) = c
        .request(&format!(
            "OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 2\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 200);

    // PLAY and SETUP for a session that does not exist: 454.
    let (status, _) = c
        .request(&format!(
            "PLAY rtsp://{addr}/live RTSP/1.0\r\nCSeq: 3\r\nSession: DEADBEEF\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 454);
    let (status, _) = c
        .request(&format!(
            "SETUP rtsp://{addr}/live/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nSession: DEADBEEF\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 454);
    // Unknown path: 404. Unsupported transport: 461.
    let (status, _) = c
        .request(&format!(
            "DESCRIBE rtsp://{addr}/nope RTSP/1.0\r\nCSeq: 5\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 404);
    let (status, _) = c
        .request(&format!(
            "SETUP rtsp://{addr}/live/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP;multicast\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 461);

    let v = viewer.join().unwrap().unwrap();
    assert!(v.frames >= 150, "the viewer got {} frames in 6 s", v.frames);
    assert!(
        v.max_gap < Duration::from_secs(1),
        "the viewer waited {:?}",
        v.max_gap
    );
    assert!(es.stop().success());
}

#[test]
fn a_keyframe_arrives_at_once_for_a_new_viewer() {
    // Keyframes every 10 s: a new viewer must not wait for the GOP.
    let es = Edgestream::start(&["--size", "320x240", "--keyint", "10"]);
    std::thread::sleep(Duration::from_secs(1));
    let mut c = raw_play(&es.addr(), "");
    let started = std::time::Instant::now();
    // The first RTP packet's NAL type must start an IDR access unit (SPS,
    // or IDR). Read through the client: media may come in the same read as
    // the PLAY response.
    let rtp = next_rtp(&mut c).expect("an RTP packet");
    let nal_type = rtp[12] & 0x1f;
    assert!(matches!(nal_type, 7 | 5), "first NAL type {nal_type}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "first packet took {:?}",
        started.elapsed()
    );
    assert!(es.stop().success());
}

#[test]
fn gstreamer_plays_over_tcp_and_udp() {
    gstreamer_ready(); // fails clearly if GStreamer is missing
    let es = Edgestream::start(&["--size", "320x240"]);
    let dir = temp_dir("gstreamer");
    for proto in ["tcp", "udp"] {
        let out = dir.join(format!("{proto}.h264"));
        // Decodes with avdec_h264 (as a player would) and keeps the
        // depayloaded stream for ffprobe; -e turns SIGINT into a clean EOS.
        let o = tool("timeout")
            .args(["-s", "INT", "6", "gst-launch-1.0", "-e", "rtspsrc"])
            .arg(format!("location={}", es.url))
            .arg(format!("protocols={proto}"))
            .args([
                "latency=100",
                "!",
                "rtph264depay",
                "!",
                "h264parse",
                "!",
                "tee",
                "name=t",
            ])
            .args(["t.", "!", "queue", "!", "avdec_h264", "!", "fakesink"])
            .args([
                "t.",
                "!",
                "queue",
                "!",
                "video/x-h264,stream-format=byte-stream",
                "!",
                "filesink",
            ])
            .arg(format!("location={}", out.display()))
            .output()
            .unwrap();
        let log =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(!log.contains("ERROR"), "GStreamer over {proto}:\n{log}");
        let frames = probe_frames(&out);
        assert!(
            frames.len() >= 90,
            "GStreamer over {proto}: {} frames in 6 s",
            frames.len()
        );
        assert!(frames[0].0, "{proto}: first frame not a keyframe");
        assert!(decode_errors(&out).is_empty());
    }
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}
