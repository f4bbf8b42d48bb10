//! systemd service notifications (sd_notify(3)): `READY=1` once the first
//! frame has been encoded, `STATUS=` with the stats line, `WATCHDOG=1` while
//! frames keep leaving the encoder, `STOPPING=1` on the way out.
//!
//! A tiny datagram writer of our own rather than a crate: it keeps one
//! unbound socket, supports abstract socket names (`@...`), and never blocks
//! (a message the manager cannot take at once is dropped, as sd_notify does
//! for a full queue). Outside systemd (no `NOTIFY_SOCKET`) it does nothing.
//!
//! The watchdog decision is pure ([`WatchdogPolicy`]); [`supervise`] is the
//! async loop that applies it.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::health::Health;
use crate::stats::PipelineStats;

/// How often [`supervise`] looks for the first frame before `READY=1`.
const READY_POLL: Duration = Duration::from_millis(50);

/// A connection to the service manager's notification socket.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, and
    /// `WATCHDOG_USEC` (with `WATCHDOG_PID`, if set, naming this process).
    pub fn from_env() -> Self {
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let target = match std::env::var_os("NOTIFY_SOCKET") {
            None => None,
            Some(path) => match Self::open(path.as_encoded_bytes()) {
                Ok(t) => Some(t),
                Err(e) => {
                    log::warn!(
                        "systemd: cannot use NOTIFY_SOCKET {}: {e}",
                        path.to_string_lossy()
                    );
                    None
                }
            },
        };
        Self { target, watchdog }
    }

    /// Sends to the socket at `path` (`@name` for an abstract socket).
    pub fn to_socket(path: &[u8], watchdog: Option<Duration>) -> io::Result<Self> {
        Ok(Self {
            target: Some(Self::open(path)?),
            watchdog,
        })
    }

    fn open(path: &[u8]) -> io::Result<(UnixDatagram, SocketAddr)> {
        let addr = match path.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path))?
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok((sock, addr))
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout systemd expects pings within, if enabled.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.enabled())
    }

    /// Sends one message of `KEY=value` lines.
    pub fn send(&self, message: &str) -> io::Result<()> {
        let Some((sock, addr)) = &self.target else {
            return Ok(());
        };
        sock.send_to_addr(message.as_bytes(), addr).map(|_| ())
    }

    fn send_logged(&self, message: &str) {
        if let Err(e) = self.send(message) {
            log::debug!("systemd: cannot notify {message:?}: {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send_logged(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send_logged(&format!("STATUS={}", one_line(status)));
    }

    pub fn watchdog_ping(&self) {
        self.send_logged("WATCHDOG=1");
    }

    pub fn stopping(&self, status: &str) {
        self.send_logged(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

/// Parses `WATCHDOG_USEC`; `None` when unset, malformed, zero, or meant for
/// another process (`WATCHDOG_PID`).
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        None => {}
        Some(Ok(p)) if p == own_pid => {}
        Some(_) => return None,
    }
    Some(Duration::from_micros(usec))
}

/// A STATUS= value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Decides at each watchdog tick whether the service is healthy.
///
/// Healthy means a frame left the encoder since the previous tick, or the
/// privacy pause is on: a pause is deliberate, frames stop by design, and
/// the process is still answering (this very tick runs on the async side,
/// which also serves RTSP). Anything else (no first frame yet, a camera
/// fault the source cannot recover from, a wedged encoder) stops the pings,
/// and systemd restarts the service after `WatchdogSec=`.
#[derive(Debug, Clone)]
pub struct WatchdogPolicy {
    last_frames: u64,
}

impl WatchdogPolicy {
    pub fn new(frames_total: u64) -> Self {
        Self {
            last_frames: frames_total,
        }
    }

    /// `frames_total`: frames encoded so far; `paused`: privacy pause on.
    pub fn tick(&mut self, frames_total: u64, paused: bool) -> bool {
        let progressed = frames_total > self.last_frames;
        self.last_frames = frames_total;
        progressed || paused
    }
}

/// Pings at half the watchdog timeout, as sd_watchdog_enabled(3) advises.
pub fn ping_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

/// Sends `READY=1` (with `status`) once the first frame is encoded, then
/// feeds the watchdog while [`WatchdogPolicy`] says so. Runs until dropped.
pub async fn supervise(
    notifier: Arc<Notifier>,
    stats: Arc<PipelineStats>,
    health: Arc<Health>,
    status: String,
) {
    if !notifier.enabled() {
        return;
    }
    let frames = || stats.frames_total.load(Ordering::Relaxed);
    while frames() == 0 {
        smol::Timer::after(READY_POLL).await;
    }
    notifier.ready(&status);
    let Some(timeout) = notifier.watchdog() else {
        return;
    };
    let mut policy = WatchdogPolicy::new(frames());
    let mut feeding = true;
    loop {
        smol::Timer::after(ping_interval(timeout)).await;
        let healthy = policy.tick(frames(), health.snapshot().paused());
        if healthy {
            notifier.watchdog_ping();
            if !feeding {
                log::info!("watchdog: frames flow again");
            }
        } else if feeding {
            log::warn!(
                "watchdog: no frame encoded in the last {:.1} s; systemd restarts the service if this goes on for {:.1} s",
                ping_interval(timeout).as_secs_f64(),
                timeout.as_secs_f64()
            );
        }
        feeding = healthy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_env_parsing() {
        let d = Some(Duration::from_secs(30));
        assert_eq!(watchdog_from(Some("30000000"), None, 7), d);
        assert_eq!(watchdog_from(Some("30000000"), Some("7"), 7), d);
        assert_eq!(watchdog_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
        assert_eq!(
            ping_interval(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
    }

    #[test]
    fn policy_feeds_only_on_progress_or_pause() {
        let mut p = WatchdogPolicy::new(0);
        assert!(!p.tick(0, false), "no frame yet");
        assert!(p.tick(5, false));
        assert!(p.tick(9, false));
        assert!(!p.tick(9, false), "stalled");
        assert!(p.tick(9, true), "paused on purpose");
        assert!(!p.tick(9, false), "pause over, still no frames");
        assert!(p.tick(10, false));
    }

    fn socket(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (sock, path)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("edgestream-sd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (sock, path) = socket(&dir);
        let n = Notifier::to_socket(path.as_os_str().as_encoded_bytes(), None).unwrap();
        assert!(n.enabled());
        assert_eq!(n.watchdog(), None);
        n.ready("streaming at rtsp://x/live\n(second line)");
        assert_eq!(
            recv(&sock),
            "READY=1\nSTATUS=streaming at rtsp://x/live (second line)"
        );
        n.status("30.0 fps");
        assert_eq!(recv(&sock), "STATUS=30.0 fps");
        n.watchdog_ping();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        n.stopping("stopping");
        assert_eq!(recv(&sock), "STOPPING=1\nSTATUS=stopping");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn abstract_socket_names_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("edgestream-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::to_socket(format!("@{name}").as_bytes(), None).unwrap();
        n.watchdog_ping();
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn supervise_waits_for_the_first_frame() {
        let dir = std::env::temp_dir().join(format!("edgestream-sdv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (sock, path) = socket(&dir);
        let n = Arc::new(
            Notifier::to_socket(
                path.as_os_str().as_encoded_bytes(),
                Some(Duration::from_millis(200)),
            )
            .unwrap(),
        );
        let stats = Arc::new(PipelineStats::default());
        let health = Health::new();
        let task = smol::spawn(supervise(
            n,
            stats.clone(),
            health.clone(),
            "streaming".into(),
        ));
        sock.set_nonblocking(true).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let mut buf = [0u8; 256];
        assert!(sock.recv(&mut buf).is_err(), "nothing before a frame");
        sock.set_nonblocking(false).unwrap();
        stats.record(100, Duration::from_millis(1), true, false);
        assert_eq!(recv(&sock), "READY=1\nSTATUS=streaming");
        // No more frames: no pings. Privacy pause: pings again.
        sock.set_nonblocking(true).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let mut pings = 0;
        while sock.recv(&mut buf).is_ok() {
            pings += 1;
        }
        assert_eq!(pings, 0, "pinged without frames");
        health.set_privacy(true);
        sock.set_nonblocking(false).unwrap();
        assert_eq!(recv(&sock), "WATCHDOG=1");
        drop(task);
        std::fs::remove_dir_all(dir).ok();
    }
}
