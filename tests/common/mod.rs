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

    /// Connects from a given loopback source address (127.0.0.0/8 is all
    /// local on Linux), so tests can act as many clients.
    pub fn connect_from(addr: &str, source: std::net::IpAddr) -> std::io::Result<Self> {
        let target: std::net::SocketAddr = addr.parse().unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.bind(&std::net::SocketAddr::new(source, 0).into())?;
        s.connect(&target.into())?;
        Ok(Self::from_stream(s.into()))
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
    retina_watch(url, transport, secs, None, None).await
}

/// Like [`retina_view`], with credentials (user, password).
pub async fn retina_view_as(
    url: &str,
    transport: &str,
    secs: f64,
    creds: Option<(&str, &str)>,
) -> Result<Viewed, String> {
    retina_watch(url, transport, secs, creds, None).await
}

/// Like [`retina_view`], but also ends (successfully) once `done` is set.
pub async fn retina_view_until(
    url: &str,
    transport: &str,
    max_secs: f64,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Viewed, String> {
    retina_watch(url, transport, max_secs, None, Some(done)).await
}

/// DESCRIBE, SETUP and PLAY with retina; the demuxed stream of items.
async fn retina_play(
    url: &str,
    transport: &str,
    creds: Option<(&str, &str)>,
) -> Result<retina::client::Demuxed, String> {
    use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions};

    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let options = SessionOptions::default().creds(creds.map(|(u, p)| Credentials {
        username: u.into(),
        password: p.into(),
    }));
    let mut session = Session::describe(url, options)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let transport = transport.parse().map_err(|e| format!("{e}"))?;
    session
        .setup(0, SetupOptions::default().transport(transport))
        .await
        .map_err(|e| format!("SETUP: {e}"))?;
    session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| e.to_string())
}

/// Plays for up to `secs` (or until `done` is set) and records what
/// arrived. A stall counts toward `max_gap` while it lasts, also at the end.
async fn retina_watch(
    url: &str,
    transport: &str,
    secs: f64,
    creds: Option<(&str, &str)>,
    done: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Result<Viewed, String> {
    use futures::StreamExt;
    use retina::codec::CodecItem;
    use std::sync::atomic::Ordering;

    let playing = retina_play(url, transport, creds).await?;
    tokio::pin!(playing);
    let mut v = Viewed::default();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut last = Instant::now();
    while Instant::now() < end && !done.as_ref().is_some_and(|d| d.load(Ordering::Relaxed)) {
        let wait = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let item = match tokio::time::timeout(wait, playing.next()).await {
            Err(_) => {
                if v.frames > 0 {
                    v.max_gap = v.max_gap.max(last.elapsed());
                }
                continue;
            }
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

/// Runs a future on a fresh tokio runtime (retina needs tokio).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

// ---- Push targets (tests/push.rs): receivers, nginx-rtmp, FLV checks ----

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

/// Where Debian's libnginx-mod-rtmp puts the module.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx with the RTMP module, run unprivileged in the foreground from a
/// config in a temp dir (pid, logs, temp paths there too), on loopback.
pub struct Nginx {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx on 127.0.0.1:`port`, application `live` with
    /// `record all` into `dir/rec`, passing the publisher's metadata to
    /// players as it is (`meta copy`).
    pub fn start(dir: &Path, port: u16) -> Self {
        assert!(
            Path::new(NGINX_RTMP_MODULE).is_file(),
            "{NGINX_RTMP_MODULE} is missing; run `bash .ci/run` or `apt-get install nginx libnginx-mod-rtmp`"
        );
        let _ = tool("nginx");
        std::fs::create_dir_all(dir.join("rec")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let conf = format!(
            "load_module {NGINX_RTMP_MODULE};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{ client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; \
             fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp; \
             access_log off; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; meta copy; record all; record_path {d}/rec; }} }} }}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            // The startup error log too, not /var/log/nginx (needs root).
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Self {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_listening(port) {
            if let Some(status) = n.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "nginx exited with {status}:\n{}",
                    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    /// The recording of stream `name`.
    pub fn recording(&self, name: &str) -> Vec<u8> {
        let path = self.dir.join("rec").join(format!("{name}.flv"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Kills nginx at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops nginx cleanly (SIGQUIT), finishing its recordings.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGQUIT);
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw FLV receiver: accepts connections on 127.0.0.1:`port` one after
/// another and keeps what each sent (like crtmpserver's inboundLiveFlv,
/// minus the server).
pub struct FlvReceiver {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// One entry per connection, filled as bytes arrive.
    pub recordings: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FlvReceiver {
    pub fn start(port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let recordings = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let recordings = recordings.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    let index = {
                        let mut r = recordings.lock().unwrap();
                        r.push(Vec::new());
                        r.len() - 1
                    };
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        match conn.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => recordings.lock().unwrap()[index].extend_from_slice(&buf[..n]),
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                    // Dropping the connection (and, when stopping, the
                    // listener) is what a killed receiver looks like.
                }
            })
        };
        Self {
            port,
            stop,
            recordings,
            thread: Some(thread),
        }
    }

    pub fn recordings(&self) -> Vec<Vec<u8>> {
        self.recordings.lock().unwrap().clone()
    }

    /// Closes the connection and the listener at once.
    pub fn kill(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.recordings()
    }
}

impl Drop for FlvReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a recording held, after the checks every recording must pass.
#[derive(Debug)]
pub struct Recording {
    /// Video frames (not counting sequence headers).
    pub frames: usize,
    pub keyframes: usize,
    pub stream_name: Option<String>,
    pub has_metadata: bool,
    pub last_timestamp: u32,
}

/// Parses an FLV recording tag by tag and checks it: the PreviousTagSize
/// chain, metadata (if any) first, an AVC sequence header before the first
/// frame, a keyframe first, NAL lengths that add up, timestamps that never
/// go back. A last tag cut short (a killed receiver) is allowed.
pub fn check_flv(what: &str, bytes: &[u8]) -> Recording {
    use edgestream::flv::read;
    let file = read::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(file.has_video, "{what}: the header has no video flag");
    let mut rec = Recording {
        frames: 0,
        keyframes: 0,
        stream_name: None,
        has_metadata: false,
        last_timestamp: 0,
    };
    let mut seen_sequence_header = false;
    let mut last = 0;
    for (i, tag) in file.tags.iter().enumerate() {
        match tag.tag_type {
            edgestream::flv::TAG_SCRIPT => {
                let values = edgestream::rtmp::amf0::decode_all(&tag.body)
                    .unwrap_or_else(|e| panic!("{what}: script tag {i}: {e}"));
                if values.first().and_then(|v| v.as_str()) == Some("onMetaData") {
                    assert!(
                        rec.frames == 0 && !seen_sequence_header,
                        "{what}: onMetaData after the video started"
                    );
                    rec.has_metadata = true;
                    rec.stream_name = values
                        .get(1)
                        .and_then(|m| m.get_str("streamName"))
                        .map(str::to_string);
                }
            }
            edgestream::flv::TAG_VIDEO => {
                let v = read::Video::parse(&tag.body)
                    .unwrap_or_else(|| panic!("{what}: video tag {i} too short"));
                assert_eq!(v.codec, 7, "{what}: tag {i} is not AVC");
                assert!(
                    tag.timestamp >= last,
                    "{what}: tag {i} goes back in time: {} after {last}",
                    tag.timestamp
                );
                last = tag.timestamp;
                match v.packet_type {
                    0 => {
                        assert!(
                            read::decoder_configuration(v.data).is_some(),
                            "{what}: tag {i}: bad AVCDecoderConfigurationRecord"
                        );
                        seen_sequence_header = true;
                    }
                    1 => {
                        assert!(
                            seen_sequence_header,
                            "{what}: frame tag {i} before any sequence header"
                        );
                        if rec.frames == 0 {
                            assert!(v.keyframe, "{what}: the first frame is not a keyframe");
                        }
                        let nals = v.nals().unwrap_or_else(|| {
                            panic!("{what}: tag {i}: NAL lengths do not add up")
                        });
                        assert!(!nals.is_empty(), "{what}: tag {i} has no NAL unit");
                        rec.frames += 1;
                        rec.keyframes += usize::from(v.keyframe);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    rec.last_timestamp = last;
    rec
}
pub mod chromium;
