//! Soak: runs edgestream at real time for a number of minutes while viewers
//! connect and disconnect at random (retina over TCP and UDP, raw clients
//! that vanish without TEARDOWN, garbage, idle connections) and a push
//! target restarts now and then. Once a minute the churn pauses and the
//! process is measured: RSS, open file descriptors, threads, and open RTSP
//! connections from its stats line. After warm-up they must be flat (RSS
//! within 1 MiB of the first post-warm-up sample; the rest equal).
//!
//! Run: `bash bench/soak.sh [MINUTES]` (default 30; CI runs 2), or
//! `cargo bench --bench soak -- --minutes N`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Per-minute figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    minute: u64,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    connections: Option<u64>,
}

fn status_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn sample(pid: u32, minute: u64, log: &Arc<Mutex<Vec<String>>>) -> Sample {
    let connections = log
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l.contains("stats: "))
        .and_then(|l| {
            let i = l.find(" connection")?;
            l[..i].rsplit(' ').next()?.parse().ok()
        });
    Sample {
        minute,
        rss_kib: status_field(pid, "VmRSS:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0),
        threads: status_field(pid, "Threads:"),
        connections,
    }
}

/// A raw-FLV push receiver that reads and discards, and can be restarted.
struct Receiver {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let r = Self {
            port,
            up: Arc::new(AtomicBool::new(false)),
        };
        r.open();
        r
    }

    /// Listens on the port again; every connection is read until `up` drops.
    fn open(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let up = self.up.clone();
        std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut buf = vec![0u8; 65536];
            while up.load(Ordering::SeqCst) {
                if let Ok((s, _)) = listener.accept() {
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    conns.push(s);
                }
                conns.retain_mut(|s| !matches!(s.read(&mut buf), Ok(0)));
                std::thread::sleep(Duration::from_millis(5));
            }
            // Dropping the listener and connections: the pusher sees the
            // server go away.
        });
    }

    fn close(&self) {
        self.up.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One random visitor for up to `budget`.
async fn visitor(url: String, addr: String, budget: Duration) {
    let secs = fastrand::f64() * budget.as_secs_f64().min(15.0);
    match fastrand::u8(0..6) {
        0 => {
            let _ = retina_view(&url, "tcp", secs).await;
        }
        1 => {
            let _ = retina_view(&url, "udp", secs).await;
        }
        2 => {
            // Garbage, then wait for the server to close.
            tokio::task::spawn_blocking(move || {
                if let Ok(mut s) = TcpStream::connect(&addr) {
                    let junk: Vec<u8> = (0..fastrand::usize(1..3000))
                        .map(|_| fastrand::u8(..))
                        .collect();
                    let _ = s.write_all(&junk);
                    let _ = s.write_all(b"\r\n\r\n");
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let _ = s.read_to_end(&mut Vec::new());
                }
            })
            .await
            .unwrap();
        }
        3 => {
            // Plays over TCP, then vanishes without TEARDOWN.
            tokio::task::spawn_blocking(move || {
                let mut c = RawClient::connect(&addr);
                let u = format!("rtsp://{addr}/live");
                let Some((_, r)) = c.request(&format!(
                    "SETUP {u}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n"
                )) else {
                    return;
                };
                let Some(session) = header(&r, "Session").map(|s| s.split(';').next().unwrap_or("").to_string())
                else {
                    return;
                };
                c.send(format!("PLAY {u} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes());
                let end = Instant::now() + Duration::from_secs_f64(secs);
                let mut buf = [0u8; 16384];
                c.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
                while Instant::now() < end {
                    let _ = c.stream.read(&mut buf);
                }
            })
            .await
            .unwrap();
        }
        _ => {
            // Connects and idles, then leaves.
            let s = tokio::net::TcpStream::connect(&addr).await;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            drop(s);
        }
    }
}

fn main() {
    let mut minutes = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--minutes N")
            }
            "--bench" => {}
            other => panic!("unknown argument {other}; use --minutes N"),
        }
    }
    assert!(minutes >= 2, "at least 2 minutes (1 of warm-up)");
    let warmup = if minutes >= 10 { 3 } else { 1 };
    let receiver = Receiver::start();
    let push = format!("tcp://127.0.0.1:{}/soak", receiver.port);
    let es = Edgestream::start(&["--size", "320x240", "--bitrate", "500", "--push", &push]);
    let pid = es.pid();
    let url = es.url.clone();
    let addr = es.addr();
    println!("soak: {minutes} min against {url} (pid {pid}), push to {push}, warm-up {warmup} min");
    println!("minute  rss_kib  fds  threads  connections");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut samples = Vec::new();
    for minute in 1..=minutes {
        let minute_end = started + Duration::from_secs(60 * minute);
        let churn_end = minute_end - Duration::from_secs(14);
        // The push target goes away once every few minutes, for 3 s.
        if minute % 3 == 2 {
            receiver.close();
            std::thread::sleep(Duration::from_secs(3));
            receiver.open();
        }
        rt.block_on(async {
            let mut tasks = Vec::new();
            while Instant::now() + Duration::from_secs(1) < churn_end {
                let budget = churn_end.saturating_duration_since(Instant::now());
                tasks.push(tokio::spawn(visitor(url.clone(), addr.clone(), budget)));
                tokio::time::sleep(Duration::from_millis(fastrand::u64(100..600))).await;
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        // Quiet: let connections close and a fresh stats line be logged.
        std::thread::sleep(minute_end.saturating_duration_since(Instant::now()));
        let s = sample(pid, minute, &es.log);
        println!(
            "{:>6}  {:>7}  {:>3}  {:>7}  {:>11}",
            s.minute,
            s.rss_kib,
            s.fds,
            s.threads,
            s.connections.map_or("?".into(), |c| c.to_string())
        );
        samples.push(s);
    }
    let log = es.log_text();
    assert!(es.stop().success(), "edgestream did not stop cleanly");

    let steady: Vec<&Sample> = samples.iter().filter(|s| s.minute > warmup).collect();
    let base = steady[0];
    let rss_max = steady.iter().map(|s| s.rss_kib).max().unwrap();
    let rss_min = steady.iter().map(|s| s.rss_kib).min().unwrap();
    println!(
        "RSS after warm-up: {rss_min}..{rss_max} KiB (spread {} KiB, ratio max/first {:.4}); fds {:?}; threads {:?}",
        rss_max - rss_min,
        rss_max as f64 / base.rss_kib as f64,
        steady.iter().map(|s| s.fds).collect::<Vec<_>>(),
        steady.iter().map(|s| s.threads).collect::<Vec<_>>(),
    );
    let mut failures = Vec::new();
    if rss_max - rss_min > 1024 {
        failures.push(format!("RSS spread {} KiB > 1024 KiB", rss_max - rss_min));
    }
    if steady.iter().any(|s| s.fds != base.fds) {
        failures.push("open file descriptors changed".to_string());
    }
    if steady.iter().any(|s| s.threads != base.threads) {
        failures.push("thread count changed".to_string());
    }
    if steady.iter().any(|s| s.connections != Some(0)) {
        failures.push("RTSP connections left open in a quiet period".to_string());
    }
    if !failures.is_empty() {
        eprintln!("{log}");
        panic!("soak failed: {}", failures.join("; "));
    }
    println!("soak: flat after warm-up");
}
