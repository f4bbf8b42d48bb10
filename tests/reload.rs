//! Reload on SIGHUP with a viewer playing: a push target added (it
//! publishes to nginx) and removed again, a bad file refused with the
//! startup message, RTSP users added, then a size change that restarts the
//! pipeline. The viewer never sees a gap of more than 1 s.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sighup_adds_and_removes_a_push_target_without_a_gap_for_the_viewer() {
    let dir = temp_dir("reload");
    let port = free_port();
    let mut nginx = Nginx::start(&dir.join("nginx"), port);
    let conf = dir.join("edgestream.toml");
    let base = "size = \"160x120\"\nfps = 15\n";
    std::fs::write(&conf, base).unwrap();
    let es = Edgestream::start(&["--config", conf.to_str().unwrap()]);
    let pid = es.pid();
    let url = es.url.clone();
    let t0 = Instant::now();
    let viewer = std::thread::spawn(move || block_on(retina_view(&url, "tcp", 9.0)));
    let at = |secs: u64| {
        if let Some(d) = (t0 + Duration::from_secs(secs)).checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };

    at(2);
    std::fs::write(
        &conf,
        format!("{base}push = [\"rtmp://127.0.0.1:{port}/live/a\"]\n"),
    )
    .unwrap();
    signal(pid, libc::SIGHUP);
    assert!(
        es.wait_lines(": publishing", 1, Duration::from_secs(5))
            .is_some(),
        "{}",
        es.log_text()
    );

    at(5);
    std::fs::write(&conf, base).unwrap();
    signal(pid, libc::SIGHUP);
    assert!(
        es.wait_lines("removed from the configuration", 1, Duration::from_secs(5))
            .is_some(),
        "{}",
        es.log_text()
    );

    // A bad file: refused with the message startup gives, nothing changes.
    at(6);
    std::fs::write(&conf, format!("{base}max-viewers = 0\n")).unwrap();
    let startup = output_text(&run_bin(&["--config", conf.to_str().unwrap()]));
    let message = startup
        .trim()
        .strip_prefix("edgestream: ")
        .unwrap_or_else(|| panic!("{startup}"))
        .to_string();
    signal(pid, libc::SIGHUP);
    let refused = format!("SIGHUP: {message}; keeping the running configuration");
    assert!(
        es.wait_lines(&refused, 1, Duration::from_secs(5)).is_some(),
        "{refused:?} not in:\n{}",
        es.log_text()
    );

    // Users added live: a new client needs credentials at once, while the
    // viewer that is already playing carries on.
    at(7);
    std::fs::write(&conf, format!("{base}rtsp-user = \"alice:secret\"\n")).unwrap();
    signal(pid, libc::SIGHUP);
    assert!(
        es.wait_lines("applying rtsp-user", 1, Duration::from_secs(5))
            .is_some(),
        "{}",
        es.log_text()
    );
    let mut c = RawClient::connect(&es.addr());
    let (code, _) = c
        .request(&format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", es.url))
        .expect("no answer");
    assert_eq!(code, 401, "users did not apply live");
    drop(c);

    let viewed = viewer.join().unwrap().expect("the viewer stayed connected");
    assert!(viewed.first_is_key);
    assert!(
        viewed.max_gap < Duration::from_secs(1),
        "a gap of {:?}",
        viewed.max_gap
    );
    assert!(viewed.frames >= 100, "{} frames in 9 s", viewed.frames);

    // A key that needs the encoder restarted: the pipeline restarts, and
    // the stream has the new size.
    std::fs::write(&conf, "size = \"320x240\"\nfps = 15\n").unwrap();
    signal(pid, libc::SIGHUP);
    assert!(
        es.wait_lines("SIGHUP: pipeline restarted", 1, Duration::from_secs(10))
            .is_some(),
        "{}",
        es.log_text()
    );
    let log = es.log_text();
    assert!(
        log.contains("SIGHUP: size changed: restarting the pipeline (viewers stay connected)"),
        "{log}"
    );
    let rec = dir.join("after.mkv");
    ffmpeg_record(&es.url, "tcp", 2, &rec);
    assert_eq!(probe_size(&rec), (320, 240));
    assert!(es.stop().success());

    nginx.stop();
    let pushed = probe_frames(&nginx.dir.join("rec").join("a.flv"));
    assert!(pushed.len() >= 15, "{} frames pushed", pushed.len());
    std::fs::remove_dir_all(dir).ok();
}
