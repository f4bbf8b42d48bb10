//! Shared helpers for the end-to-end tests: start the real binary on a free
//! loopback port, run the real peers (ffmpeg, ffprobe), and read results.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
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
        if !args.contains(&"--rtsp") {
            cmd.args(["--rtsp", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
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
                    // Logged before the URL is announced: a test that reads
                    // the log once start() returns must find the banner.
                    log.lock().unwrap().push(line.clone());
                    if let Some(i) = line.find("rtsp://") {
                        if line.contains("streaming") {
                            let url: String = line[i..]
                                .chars()
                                .take_while(|c| !c.is_whitespace())
                                .collect();
                            let _ = tx.send(url);
                        }
                    }
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
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

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgestream-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Records `secs` seconds of the stream with ffmpeg (no re-encoding).
pub fn ffmpeg_record(url: &str, transport: &str, secs: u32, out: &Path) {
    let status = tool("timeout")
        .arg(format!("{}", secs + 30))
        .arg("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            url,
        ])
        .args(["-t", &secs.to_string(), "-c", "copy", "-y"])
        .arg(out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "ffmpeg recording over {transport} failed: {status}"
    );
}

/// Frame facts from ffprobe: (key_frame, pict_type) per frame, decoding them.
pub fn probe_frames(file: &Path) -> Vec<(bool, String)> {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame,pict_type",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split(',');
            let key = it.next().unwrap_or("0").trim() == "1";
            (key, it.next().unwrap_or("").trim().to_string())
        })
        .collect()
}

/// Decodes the whole file; returns ffmpeg's error output (empty when clean).
pub fn decode_errors(file: &Path) -> String {
    let out = tool("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "decoding {} failed", file.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Width and height of the first video stream.
pub fn probe_size(file: &Path) -> (u32, u32) {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.trim().split(',');
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

/// A minimal hand-driven RTSP client for malformed and stalled requests.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: &str) -> Self {
        Self::from_stream(TcpStream::connect(addr).unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response (status line, headers, body by Content-Length),
    /// skipping interleaved data. `None` if the server closed first.
    pub fn response(&mut self) -> Option<(u16, String)> {
        loop {
            if self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let n = 4 + u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                if self.buf.len() >= n {
                    self.buf.drain(..n);
                    continue;
                }
            } else if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                    self.buf.drain(..end + 4 + len);
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    return Some((status, format!("{head}\r\n\r\n{body}")));
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn request(&mut self, text: &str) -> Option<(u16, String)> {
        self.send(text.as_bytes());
        self.response()
    }

    /// Whether the server has closed the connection (reads until EOF or
    /// the timeout).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut chunk = [0u8; 65536];
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
        false
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value in a response text.
pub fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What a retina viewer saw.
#[derive(Debug, Default)]
pub struct Viewed {
    pub frames: usize,
    pub first_is_key: bool,
    pub sender_reports: usize,
    /// The longest wait between two frames.
    pub max_gap: Duration,
    /// When each frame arrived and whether it was a keyframe.
    pub frame_times: Vec<(Instant, bool)>,
}

/// Plays `url` with retina over `transport` ("tcp" or "udp") for `secs`.
pub async fn retina_view(url: &str, transport: &str, secs: f64) -> Result<Viewed, String> {
    use futures::StreamExt;
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
    use retina::codec::CodecItem;

    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut session = Session::describe(url, SessionOptions::default())
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let transport = transport.parse().map_err(|e| format!("{e}"))?;
    session
        .setup(0, SetupOptions::default().transport(transport))
        .await
        .map_err(|e| format!("SETUP: {e}"))?;
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| e.to_string())?;
    tokio::pin!(playing);
    let mut v = Viewed::default();
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut last = Instant::now();
    loop {
        let item = match tokio::time::timeout_at(end, playing.next()).await {
            Err(_) => break,
            Ok(None) => return Err(format!("stream ended after {} frames", v.frames)),
            Ok(Some(Err(e))) => return Err(format!("after {} frames: {e}", v.frames)),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                if v.frames == 0 {
                    v.first_is_key = f.is_random_access_point();
                } else {
                    v.max_gap = v.max_gap.max(last.elapsed());
                }
                last = Instant::now();
                v.frame_times.push((last, f.is_random_access_point()));
                v.frames += 1;
            }
            CodecItem::Rtcp(r)
                if r.pkts()
                    .any(|p| matches!(p.as_sender_report(), Ok(Some(_)))) =>
            {
                v.sender_reports += 1;
            }
            _ => {}
        }
    }
    Ok(v)
}

/// Runs a future on a fresh tokio runtime (retina needs tokio).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
