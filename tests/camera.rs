//! Camera behaviour that needs no camera: a missing device is waited for,
//! a wrong one is refused, the listing flags, and the privacy pause (SIGUSR1)
//! with the test pattern. The real-device tests are in tests/vivid.rs.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_missing_camera_is_waited_for_not_fatal() {
    let missing = "/dev/video-edgestream-test-missing";
    let es = Edgestream::start(&["--source", missing, "--size", "160x120"]);
    std::thread::sleep(Duration::from_millis(1500));
    let log = es.log_text();
    assert!(
        log.contains(&format!("camera {missing} is not there; waiting for it")),
        "{log}"
    );
    assert!(
        log.contains(&format!("camera {missing} is not there, retrying in 0.5 s")),
        "{log}"
    );
    assert!(log.contains("(not there yet)"), "{log}");
    // Still running and serving; stops cleanly.
    let status = es.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn a_device_that_is_no_camera_is_refused() {
    let o = run_bin(&["--source", "/dev/null", "--rtsp", "off"]);
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("/dev/null is not a V4L2 device"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn listing_flags() {
    let o = run_bin(&["--list-devices"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("no V4L2 devices") || out.contains("/dev/video"),
        "{out}"
    );
    let o = run_bin(&[
        "--list-formats",
        "--source",
        "/dev/video-edgestream-test-missing",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("is not there"),
        "{}",
        output_text(&o)
    );
    let o = run_bin(&["--list-formats", "--source", "/dev/null"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        output_text(&o).contains("not a V4L2 device"),
        "{}",
        output_text(&o)
    );
}

#[test]
fn sigusr1_pauses_and_resumes_with_a_keyframe() {
    let es = Edgestream::start(&["--size", "160x120", "--fps", "20", "--keyint", "30"]);
    let url = es.url.clone();
    let t0 = Instant::now();
    let viewer = std::thread::spawn(move || block_on(retina_view(&url, "tcp", 7.0)));
    let pid = es.pid();
    let sleep_until = |secs: f64| {
        let due = t0 + Duration::from_secs_f64(secs);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    };
    sleep_until(2.0);
    signal(pid, libc::SIGUSR1);
    sleep_until(4.0);
    signal(pid, libc::SIGUSR1);
    let viewed = viewer.join().unwrap().expect("the viewer stays connected");
    let times: Vec<(f64, bool)> = viewed
        .frame_times
        .iter()
        .map(|&(t, k)| (t.saturating_duration_since(t0).as_secs_f64(), k))
        .collect();
    // During the pause: the privacy card at about 2 fps, starting with an
    // IDR (the first frame followed by a slate-sized gap).
    let during = times.iter().filter(|t| t.0 > 2.3 && t.0 < 4.0).count();
    assert!(
        (2..=5).contains(&during),
        "frames during the pause: {times:?}"
    );
    let first_slate = times
        .windows(2)
        .find(|w| w[0].0 > 1.9 && w[1].0 - w[0].0 > 0.3)
        .map(|w| w[0])
        .expect("no slate");
    assert!(first_slate.1, "the slate starts with a keyframe: {times:?}");
    // After the switch: the camera's frames. A slate frame sent between the
    // signal and the reopen (followed by a slate-sized gap) is not one.
    let mut after: Vec<_> = times.iter().filter(|t| t.0 >= 4.0).collect();
    while after.len() > 1 && after[1].0 - after[0].0 > 0.3 {
        after.remove(0);
    }
    assert!(after.len() >= 20, "frames after the pause: {after:?}");
    assert!(
        after[0].1,
        "the first frame after the pause is not a keyframe"
    );
    assert!(times.iter().filter(|t| t.0 < 2.0).count() >= 10);
    let log = es.log_text();
    for needle in [
        "SIGUSR1: privacy pause on",
        "privacy pause: capture stopped; viewers stay connected (they see the privacy card)",
        "SIGUSR1: privacy pause off",
        "privacy pause off: resuming capture",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    assert!(es.stop().success());
}
