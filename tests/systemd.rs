//! systemd notifications from the real binary, received on a real unix
//! datagram socket given as NOTIFY_SOCKET, with WATCHDOG_USEC set.
//!
//! Two set-ups: a camera that is not there (READY at once, WATCHDOG all
//! through the absence, STATUS says why), and a .y4m stream through a named
//! pipe that the test writes frame by frame. A file source is read with a
//! blocking read, so when the writer stops, the capture loop hangs inside
//! the read: that is the wedged pipeline the watchdog exists for.

mod common;

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const W: usize = 160;
const H: usize = 120;
const FPS: u64 = 10;

enum Feed {
    Frames(usize, mpsc::Sender<()>),
    Close,
}

/// Opens the pipe for writing (blocks until edgestream opens it), writes the
/// header, then frames on request at FPS.
fn writer(path: std::path::PathBuf, rx: mpsc::Receiver<Feed>) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    writeln!(f, "YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg").unwrap();
    let mut frame = vec![16u8; W * H * 3 / 2];
    let mut n = 0u8;
    while let Ok(Feed::Frames(count, done)) = rx.recv() {
        for _ in 0..count {
            // Some motion, so frames differ.
            n = n.wrapping_add(7);
            frame[..W * H].iter_mut().enumerate().for_each(|(i, p)| {
                *p = (i as u8).wrapping_add(n);
            });
            f.write_all(b"FRAME\n").unwrap();
            f.write_all(&frame).unwrap();
            std::thread::sleep(Duration::from_millis(1000 / FPS));
        }
        let _ = done.send(());
    }
}

/// Messages received, with the time each arrived.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;

fn collect(sock: UnixDatagram) -> Received {
    let got: Received = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if std::env::var_os("EDGESTREAM_TEST_LOG").is_some() {
                eprintln!("notify| {msg:?}");
            }
            g.lock().unwrap().push((Instant::now(), msg));
        }
    });
    got
}

fn count(got: &Received, what: &str, from: Instant, to: Instant) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(t, m)| *t >= from && *t <= to && m.lines().any(|l| l == what))
        .count()
}

fn feed(tx: &mpsc::Sender<Feed>, frames: usize) {
    let (done_tx, done_rx) = mpsc::channel();
    tx.send(Feed::Frames(frames, done_tx)).unwrap();
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer did not finish");
}

fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, Received) {
    let notify = dir.join("notify");
    let sock = UnixDatagram::bind(&notify).unwrap();
    (notify, collect(sock))
}

#[test]
fn no_camera_ready_at_once_watchdog_all_through_the_absence() {
    let dir = temp_dir("systemd-nocam");
    let (notify, got) = notify_socket(&dir);
    let missing = "/dev/video-edgestream-test-missing";
    let t0 = Instant::now();
    // WATCHDOG_USEC = 0.6 s: pings every 0.3 s; the absence below lasts
    // 20 timeouts, with the reopen backoff growing to its 10 s cap.
    let es = Edgestream::start_with_env(
        &["--source", missing, "--size", "160x120"],
        &[
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    let deadline = t0 + Duration::from_secs(2);
    let ready = loop {
        let r = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m)| m.starts_with("READY=1"))
            .map(|(t, m)| (*t, m.clone()));
        if let Some(r) = r {
            break r;
        }
        assert!(Instant::now() < deadline, "no READY=1 within 2 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(ready.0 - t0 < Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(12));
    let end = Instant::now();
    // Every 0.6 s window of the absence holds a ping.
    let pings: Vec<Instant> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, m)| *t >= ready.0 && m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 30, "{} pings in 12 s", pings.len());
    let mut last = ready.0;
    for t in pings.iter().copied().chain([end]) {
        assert!(
            t - last < Duration::from_millis(600),
            "a gap of {:?} without WATCHDOG=1",
            t - last
        );
        last = t;
    }
    let statuses: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, m)| m.lines().find_map(|l| l.strip_prefix("STATUS=")))
        .map(str::to_string)
        .collect();
    assert!(
        statuses.iter().any(|s| s
            .starts_with(&format!("camera {missing} is not there, retrying in"))
            && s.ends_with("; 0 viewers")),
        "{statuses:?}"
    );
    assert!(!es.log_text().contains("watchdog:"), "{}", es.log_text());
    let status = es.stop();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ready_at_once_watchdog_stops_only_while_the_pipeline_hangs() {
    let dir = temp_dir("systemd-notify");
    let fifo = dir.join("camera.y4m");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let (notify, got) = notify_socket(&dir);

    let (tx, rx) = mpsc::channel();
    let w = {
        let fifo = fifo.clone();
        std::thread::spawn(move || writer(fifo, rx))
    };
    // WATCHDOG_USEC = 1 s: pings every 0.5 s while healthy.
    let es = Edgestream::start_with_env(
        &["--source", fifo.to_str().unwrap(), "--pace", "asap"],
        &[
            ("NOTIFY_SOCKET", notify.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let t0 = Instant::now();

    // Started, no frame yet: READY at once.
    std::thread::sleep(Duration::from_millis(1500));
    let ready: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.starts_with("READY=1"))
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert!(
        ready[0].contains("STATUS=") && ready[0].contains("rtsp://127.0.0.1:"),
        "{ready:?}"
    );

    // Frames flow for 3 s: pings.
    let a = Instant::now();
    feed(&tx, 3 * FPS as usize);
    let a_end = Instant::now();
    let pings_a = count(&got, "WATCHDOG=1", a, a_end);
    assert!(pings_a >= 3, "{pings_a} pings in 3 s of frames");

    // The writer stops: the capture loop hangs in its read for 4 s. After
    // one more tick (0.5 s, plus margin), no pings, and the log says why.
    std::thread::sleep(Duration::from_secs(4));
    let b_end = Instant::now();
    let stalled = count(
        &got,
        "WATCHDOG=1",
        a_end + Duration::from_millis(1200),
        b_end,
    );
    assert_eq!(stalled, 0, "pinged while the pipeline hung");
    assert!(
        es.log_text()
            .contains("watchdog: the capture loop made no progress"),
        "{}",
        es.log_text()
    );

    // Frames again: pings again.
    feed(&tx, 3 * FPS as usize);
    let c_end = Instant::now();
    let pings_c = count(&got, "WATCHDOG=1", b_end, c_end);
    assert!(pings_c >= 2, "{pings_c} pings after frames resumed");
    assert!(
        es.log_text()
            .contains("watchdog: the capture loop is running again")
    );

    // The stats line (every 10 s) goes to STATUS= as well.
    let deadline = t0 + Duration::from_secs(40);
    let stats = loop {
        let found = got
            .lock()
            .unwrap()
            .iter()
            .find(|(_, m)| m.starts_with("STATUS=") && m.contains(" fps, encode "))
            .map(|(_, m)| m.clone());
        if let Some(s) = found {
            break s;
        }
        assert!(Instant::now() < deadline, "no stats line in STATUS=");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        stats.contains("kbit/s") && stats.contains("viewers"),
        "{stats}"
    );
    let line = es
        .log_text()
        .lines()
        .find(|l| l.contains("stats: "))
        .map(|l| l.split("stats: ").nth(1).unwrap().to_string())
        .unwrap();
    assert!(
        got.lock()
            .unwrap()
            .iter()
            .any(|(_, m)| *m == format!("STATUS={line}")),
        "the logged stats line {line:?} was not sent as STATUS="
    );

    // End of the stream: a clean stop, announced.
    tx.send(Feed::Close).unwrap();
    w.join().unwrap();
    let status = es.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(200));
    let all = got.lock().unwrap().clone();
    assert!(
        all.iter().any(|(_, m)| m.starts_with("STOPPING=1")),
        "{all:?}"
    );
    assert_eq!(
        all.iter().filter(|(_, m)| m.starts_with("READY=1")).count(),
        1
    );
    std::fs::remove_dir_all(dir).ok();
}
