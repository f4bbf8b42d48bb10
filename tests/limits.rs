//! Connection limits with the default config never refuse a legitimate
//! viewer: 16 ffmpeg viewers from one address (127.0.0.1, as an NVR or a
//! NAT'd office would be) all play. And the UDP ports can be pinned for a
//! firewall.

mod common;

use common::*;

#[test]
fn sixteen_ffmpeg_viewers_from_one_address_all_play_with_the_default_config() {
    let dir = temp_dir("limits");
    let es = Edgestream::start(&["--size", "160x120", "--fps", "15"]);
    let viewers: Vec<_> = (0..16)
        .map(|i| {
            let url = es.url.clone();
            let out = dir.join(format!("v{i}.mkv"));
            std::thread::spawn(move || {
                let transport = if i % 2 == 0 { "tcp" } else { "udp" };
                ffmpeg_record(&url, transport, 3, &out);
                out
            })
        })
        .collect();
    for (i, v) in viewers.into_iter().enumerate() {
        let out = v.join().unwrap_or_else(|_| panic!("viewer {i} failed"));
        let frames = probe_frames(&out);
        assert!(
            frames.len() >= 30,
            "viewer {i}: {} frames in 3 s",
            frames.len()
        );
        assert!(frames[0].0, "viewer {i}: first frame not a keyframe");
    }
    let log = es.log_text();
    // A refusal (answered 503) is logged as "rtsp: refusing ..."; a bare
    // "503" would also match a timestamp's milliseconds.
    assert!(!log.contains("rtsp: refusing"), "{log}");
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn rtsp_udp_ports_pins_the_server_pair() {
    let dir = temp_dir("udp-ports");
    let first = free_port() & !1;
    let range = format!("{first}-{}", first + 3);
    let es = Edgestream::start(&["--size", "160x120", "--rtsp-udp-ports", &range]);
    let log = es.log_text();
    let pinned = (0..2).any(|i| {
        let a = first + 2 * i;
        log.contains(&format!("UDP ports {a}-{}", a + 1))
    });
    assert!(pinned, "not within {range}:\n{log}");
    let out = dir.join("udp.mkv");
    ffmpeg_record(&es.url, "udp", 2, &out);
    assert!(probe_frames(&out).len() >= 30);
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}
