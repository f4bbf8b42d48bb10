//! The process harness: start the real binary on a free loopback port,
//! read its log, signal and wait for it; ports, temp dirs, tools.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgestream");

/// A running edgestream with its log collected.
pub struct Edgestream {
    child: Option<Child>,
    pub url: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Edgestream {
    /// Starts the binary with `args` (plus `--rtsp 127.0.0.1:0` unless an
    /// `--rtsp` is given) and waits for the startup line with the URL.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied());
        Self::start_command(cmd, args, Duration::from_secs(30))
    }

    /// Starts `cmd` (edgestream, or a runner such as qemu-arm with the
    /// binary as its first argument) with `args`, waiting up to `limit` for
    /// the URL line.
    pub fn start_command(mut cmd: Command, args: &[&str], limit: Duration) -> Self {
        if !args.contains(&"--rtsp") {
            cmd.args(["--rtsp", "127.0.0.1:0"]);
        }
        // The HTTP face's default (0.0.0.0:8080) would be shared by tests
        // running at once, and warns that it is open to the network.
        if !args.contains(&"--http") {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        // Likewise WebRTC's UDP and TCP ports (0.0.0.0:8189 by default).
        if !args.contains(&"--webrtc-udp") {
            cmd.args(["--webrtc-udp", "127.0.0.1:0"]);
        }
        if !args.contains(&"--webrtc-tcp") {
            cmd.args(["--webrtc-tcp", "127.0.0.1:0"]);
        }
        if cmd.get_envs().all(|(k, _)| k != "JOURNAL_STREAM") {
            cmd.env_remove("JOURNAL_STREAM");
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start edgestream");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("EDGESTREAM_TEST_LOG").is_some() {
                        eprintln!("edgestream| {line}");
                    }
                    let url = line
                        .find("rtsp://")
                        .filter(|_| line.contains("streaming"))
                        .map(|i| {
                            line[i..]
                                .chars()
                                .take_while(|c| !c.is_whitespace())
                                .collect::<String>()
                        });
                    // Logged before the URL is handed out, so a caller that
                    // reads the log right after start() sees the banner.
                    log.lock().unwrap().push(line);
                    if let Some(url) = url {
                        let _ = tx.send(url);
                    }
                }
            });
        }
        let url = match rx.recv_timeout(limit) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "edgestream did not announce its URL:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child: Some(child),
            url,
            log,
        }
    }

    /// The `host:port` of the RTSP server.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("rtsp://")
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        signal(child.id(), libc::SIGTERM);
        wait_timeout(&mut child, Duration::from_secs(15))
            .expect("edgestream did not stop on SIGTERM")
    }

    /// Waits for the process to exit by itself.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_timeout(&mut child, limit).expect("edgestream did not exit in time")
    }
}

impl Drop for Edgestream {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command, failing the test with a clear message if it is missing.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed; run `bash .ci/run` or `apt-get install ffmpeg`"
    );
    Command::new(name)
}

/// Makes sure GStreamer is installed and its plugin registry is built,
/// before a test gives `gst-launch-1.0` a few seconds to record: the first
/// run on a fresh machine scans every plugin, which took longer than a
/// 6 s recording under a loaded CI machine (the pipeline never started
/// and, killed mid-scan, GStreamer saved no registry either). Once per
/// test process; the scan itself is allowed two minutes.
pub fn gstreamer_ready() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        let _ = tool("gst-launch-1.0");
        let out = tool("timeout")
            .args(["120", "gst-inspect-1.0", "rtspsrc"])
            .output()
            .expect("run gst-inspect-1.0");
        assert!(
            out.status.success(),
            "gst-inspect-1.0 rtspsrc: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgestream-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with `args` to completion (no JOURNAL_STREAM).
pub fn run_bin(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

/// A command's stdout and stderr together, for messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A free loopback TCP port (bound and released; the race is harmless here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp, so
/// that a one-shot listener such as `ffmpeg -listen 1` is not consumed).
pub fn is_listening(port: u16) -> bool {
    let needle = format!("0100007F:{port:04X} 00000000:0000 0A");
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| t.contains(&needle))
}

pub fn wait_listening(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !is_listening(port) {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

impl Edgestream {
    /// Starts the binary at 320x240 for `frames` frames, pushing to `url`,
    /// with `more` arguments.
    pub fn push_frames(frames: usize, url: &str, more: &[&str]) -> Self {
        let n = frames.to_string();
        let mut args = vec!["--size", "320x240", "--frames", &n, "--push", url];
        args.extend_from_slice(more);
        Self::start(&args)
    }

    /// Waits up to 20 s for `push TARGET: publishing` in the log; on failure
    /// panics with the log and what `peer_logs` say then.
    pub fn assert_publishing(&self, target: &str, peer_logs: &[&dyn Fn() -> String]) {
        let line = format!("push {target}: publishing");
        if self.wait_lines(&line, 1, Duration::from_secs(20)).is_none() {
            let peers: Vec<String> = peer_logs.iter().map(|f| f()).collect();
            panic!("not publishing:\n{}\n{}", self.log_text(), peers.join("\n"));
        }
    }

    /// How many log lines contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until at least `n` log lines contain `needle`; returns how long
    /// it took, or `None` after `limit`.
    pub fn wait_lines(&self, needle: &str, n: usize, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.count_lines(needle) >= n {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}
