//! A join storm over raw RTSP (RTP interleaved over TCP): every joiner's
//! first packet starts a keyframe, and the steady viewer sees no IDR flood.
//! The delays themselves are measured by bench/storm.py, not asserted here.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Edgestream, RawClient, next_rtp, raw_play};

/// SETUP + PLAY over TCP, with a `Range` header or without.
fn play(addr: &str, range: bool) -> RawClient {
    raw_play(addr, if range { "Range: npt=0.000-\r\n" } else { "" })
}

/// (RTP timestamp, NAL unit types the packet starts).
fn nal_types(rtp: &[u8]) -> (u32, Vec<u8>) {
    let ts = u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]);
    let p = &rtp[12 + 4 * (rtp[0] & 0x0f) as usize..];
    let types = match p[0] & 0x1f {
        // FU-A: the start fragment names the NAL unit.
        28 if p[1] & 0x80 != 0 => vec![p[1] & 0x1f],
        28 => vec![],
        // STAP-A: each aggregated NAL unit.
        24 => {
            let (mut i, mut v) = (1, vec![]);
            while i + 3 <= p.len() {
                v.push(p[i + 2] & 0x1f);
                i += 2 + u16::from_be_bytes([p[i], p[i + 1]]) as usize;
            }
            v
        }
        t => vec![t],
    };
    (ts, types)
}

#[test]
fn a_join_storm_starts_every_viewer_at_a_keyframe_without_an_idr_flood() {
    let es = Edgestream::start(&["--keyframe-burst", "2", "--max-connections-per-ip", "64"]);
    let addr = es.addr();
    let mut steady = play(&addr, true);
    // Past the first GOP.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(3) {
        next_rtp(&mut steady).expect("the steady viewer gets media");
    }
    let idrs = Arc::new(Mutex::new(Vec::<(Instant, u32)>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (idrs, done) = (idrs.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(p) = next_rtp(&mut steady) else {
                    break;
                };
                let (ts, types) = nal_types(&p);
                let mut v = idrs.lock().unwrap();
                if types.contains(&5) && v.last().map(|l| l.1) != Some(ts) {
                    v.push((Instant::now(), ts));
                }
            }
        })
    };
    let start = Instant::now();
    let joiners: Vec<_> = (0..10)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(100));
            let mut c = play(&addr, i % 2 == 0);
            std::thread::spawn(move || {
                let first = next_rtp(&mut c).expect("a joiner gets media");
                let (_, types) = nal_types(&first);
                // Then a second of frames: it keeps receiving.
                for _ in 0..30 {
                    next_rtp(&mut c).expect("a joiner keeps getting media");
                }
                types
            })
        })
        .collect();
    for (i, j) in joiners.into_iter().enumerate() {
        let types = j.join().unwrap();
        assert!(
            types.iter().any(|t| matches!(t, 5 | 7)),
            "joiner {i} started with NAL types {types:?}, not a keyframe"
        );
    }
    let storm = start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = idrs
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= start && *t <= start + storm + Duration::from_millis(200))
        .count();
    // The burst (2), one token back per second, and the GOP (every 2 s):
    // an IDR per joiner would be 10.
    let secs = (storm.as_secs_f64() + 0.2).ceil() as usize;
    let allowed = 2 + secs + secs.div_ceil(2) + 1;
    assert!(
        during <= allowed && during < 10,
        "{during} IDRs in {storm:?} of joins (allowed {allowed})"
    );
    drop(es);
    let _ = watcher.join();
}
