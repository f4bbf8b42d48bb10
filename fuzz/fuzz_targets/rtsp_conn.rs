//! One RTSP connection's policy (`rtsp::conn::Conn`) driven by arbitrary
//! bytes in arbitrary pieces at arbitrary times, the way `server.rs` drives
//! it: no panic, every answer a well-formed status line, nothing left due
//! after `handle_timeout(now)`, and the viewer slots balanced at the end.
//!
//! Input: one seed byte, then records `[length, step]` followed by `length`
//! bytes for the connection; `step` advances the clock by 50 ms units.
#![no_main]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgestream::h264::ParameterSets;
use edgestream::media::{Fraction, StreamInfo};
use edgestream::rtsp::conn::{Conn, ConnConfig, Count, Env, Event};
use edgestream::rtsp::limits::LimitSettings;
use edgestream::rtsp::parse::Limits;
use edgestream::rtsp::session::{Admission, Settings, Track};
use libfuzzer_sys::fuzz_target;

struct FuzzEnv {
    free: AtomicUsize,
    info: Option<Arc<StreamInfo>>,
}

impl Admission for FuzzEnv {
    fn try_admit(&self) -> bool {
        self.free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }
    fn release(&self) {
        self.free.fetch_add(1, Ordering::AcqRel);
    }
}

impl Env for FuzzEnv {
    fn stream_info(&self) -> Option<Arc<StreamInfo>> {
        self.info.clone()
    }
    fn last_pts(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }
    fn admission(&self) -> &dyn Admission {
        self
    }
    fn count(&self, _: Count) {}
}

/// Writes and carries out everything pending, as the server does.
fn drive(conn: &mut Conn, now: Instant) -> bool {
    loop {
        while let Some(bytes) = conn.poll_transmit() {
            assert!(bytes.starts_with(b"RTSP/1.0 "), "not a status line");
        }
        match conn.poll_event() {
            None => return false,
            Some(Event::Close(reason)) => {
                let _ = reason.to_string();
                return true;
            }
            Some(Event::Play(p)) => {
                if let Some(v) = p.video {
                    conn.set_next_seq(Track::Video, v.first_seq.wrapping_add(7));
                }
                if let Some(a) = p.audio {
                    conn.set_next_seq(Track::Audio, a.first_seq.wrapping_add(7));
                }
            }
            Some(Event::Pause | Event::Teardown | Event::AwaitStream(_)) => {}
        }
        conn.handle_bytes(now, &[]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let info = StreamInfo {
        width: 64,
        height: 48,
        fps: Fraction::new(30, 1),
        bitrate_kbps: 100,
        params: ParameterSets::new(vec![0x67, 0x42, 0xc0, 0x1e], vec![0x68, 0xce]).unwrap(),
    };
    let env = Arc::new(FuzzEnv {
        free: AtomicUsize::new(1),
        info: (seed & 1 == 0).then(|| Arc::new(info)),
    });
    let settings = Arc::new(Settings {
        path: "/live".into(),
        session_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(30),
        udp: seed & 2 == 0,
        auth: None,
        audio: seed & 4 == 0,
    });
    let config = ConnConfig {
        parse_limits: Limits {
            max_header_bytes: 2048,
            ..Limits::default()
        },
        limits: LimitSettings::default(),
        local_ip: "127.0.0.1".parse().unwrap(),
        udp_server_ports: (6970, 6971),
        sdp_session_id: 1,
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut conn = Conn::new(
        settings,
        config,
        env.clone(),
        "127.0.0.1:5000".parse().unwrap(),
        t0,
        fastrand::Rng::with_seed(u64::from(seed)),
    );
    while let [len, step, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        now += Duration::from_millis(u64::from(*step) * 50);
        conn.handle_bytes(now, &tail[..n]);
        rest = &tail[n..];
        if drive(&mut conn, now) {
            break;
        }
        conn.handle_timeout(now);
        if drive(&mut conn, now) {
            break;
        }
        if let Some(due) = conn.poll_timeout() {
            assert!(due > now, "a deadline left due after handle_timeout");
        }
    }
    conn.close_session();
    assert_eq!(env.free.load(Ordering::Relaxed), 1, "a viewer slot leaked");
});
