//! systemd service notifications (sd_notify(3)): `READY=1` once the
//! listeners are up and the capture thread runs (camera or not), `STATUS=`
//! with what the device is doing and the stats line, `WATCHDOG=1` while the
//! capture loop makes progress, `STOPPING=1` on the way out.
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
use std::time::{Duration, Instant};

use crate::health::{Health, Snapshot, SourceState};

/// How often [`supervise`] looks for a change of status.
const STATUS_POLL: Duration = Duration::from_millis(500);

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
    #[cfg(test)]
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
/// Healthy means the capture loop went round since the previous tick
/// ([`Health::heartbeat`]): a frame, a wait for a missing camera, a reopen
/// attempt, the privacy pause and the "no signal" slate all count, since the
/// program recovers those by itself. Only a wedged loop (a capture or encode
/// call that never returns, a deadlock) stops the pings, and systemd
/// restarts the service after `WatchdogSec=`.
#[derive(Debug, Clone)]
pub struct WatchdogPolicy {
    last_beat: u64,
}

impl WatchdogPolicy {
    pub fn new(heartbeat: u64) -> Self {
        Self {
            last_beat: heartbeat,
        }
    }

    /// `heartbeat`: the capture loop's progress counter now.
    pub fn tick(&mut self, heartbeat: u64) -> bool {
        let progressed = heartbeat != self.last_beat;
        self.last_beat = heartbeat;
        progressed
    }
}

/// Pings at half the watchdog timeout, as sd_watchdog_enabled(3) advises.
pub fn ping_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(10))
}

/// What the device is doing, for `STATUS=`: `streaming` while frames flow,
/// else why not ("camera /dev/video0 is not there, retrying in 4 s"), then
/// the number of viewers.
pub fn status_text(health: &Snapshot, streaming: &str, viewers: usize) -> String {
    let what = match health.source {
        SourceState::Delivering => streaming.to_string(),
        SourceState::Paused => "privacy pause (sending the slate)".to_string(),
        SourceState::Starting if health.privacy => "privacy pause (sending the slate)".to_string(),
        SourceState::Starting => format!("{streaming} (waiting for the first frame)"),
        SourceState::Fault => health
            .source_detail
            .clone()
            .unwrap_or_else(|| "source fault".into()),
    };
    let s = if viewers == 1 { "" } else { "s" };
    format!("{what}; {viewers} viewer{s}")
}

/// Sends `READY=1` (with the first status) at once: it runs once the
/// listeners are bound and the capture thread is started, camera or not.
/// Then feeds the watchdog while [`WatchdogPolicy`] says so, and updates
/// `STATUS=` from `status` whenever it changes. Runs until dropped.
pub async fn supervise(notifier: Arc<Notifier>, health: Arc<Health>, status: impl Fn() -> String) {
    if !notifier.enabled() {
        return;
    }
    let mut last_status = status();
    notifier.ready(&last_status);
    let timeout = notifier.watchdog();
    let tick = timeout.map_or(STATUS_POLL, |t| ping_interval(t).min(STATUS_POLL));
    let mut policy = WatchdogPolicy::new(health.heartbeat());
    let mut feeding = true;
    let mut next_ping = Instant::now();
    loop {
        smol::Timer::after(tick).await;
        let now_status = status();
        if now_status != last_status {
            notifier.status(&now_status);
            last_status = now_status;
        }
        let Some(timeout) = timeout else { continue };
        if Instant::now() < next_ping {
            continue;
        }
        next_ping = Instant::now() + ping_interval(timeout);
        let healthy = policy.tick(health.heartbeat());
        if healthy {
            notifier.watchdog_ping();
            if !feeding {
                log::info!("watchdog: the capture loop is running again");
            }
        } else if feeding {
            log::warn!(
                "watchdog: the capture loop made no progress in {:.1} s (a capture or encode call \
                 is stuck); systemd restarts the service if this goes on for {:.1} s",
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
    fn policy_feeds_only_while_the_loop_goes_round() {
        let mut p = WatchdogPolicy::new(0);
        assert!(!p.tick(0), "no progress yet");
        assert!(p.tick(5));
        assert!(p.tick(9));
        assert!(!p.tick(9), "wedged");
        assert!(p.tick(10));
    }

    #[test]
    fn status_says_what_the_device_does() {
        let mut h = Health::new().snapshot();
        h.source = SourceState::Fault;
        h.source_detail = Some("camera /dev/video0 is not there, retrying in 4 s".into());
        assert_eq!(
            status_text(&h, "streaming", 2),
            "camera /dev/video0 is not there, retrying in 4 s; 2 viewers"
        );
        h.source = SourceState::Delivering;
        assert_eq!(status_text(&h, "streaming x", 1), "streaming x; 1 viewer");
        h.source = SourceState::Paused;
        assert!(status_text(&h, "", 0).starts_with("privacy pause"));
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
    fn supervise_is_ready_at_once_and_pings_while_the_loop_beats() {
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
        let health = Health::new();
        let h = health.clone();
        let task = smol::spawn(supervise(n, health.clone(), move || {
            status_text(&h.snapshot(), "streaming", 0)
        }));
        // Ready before any frame or heartbeat.
        assert_eq!(
            recv(&sock),
            "READY=1\nSTATUS=streaming (waiting for the first frame); 0 viewers"
        );
        // No heartbeat: no pings (a wedged loop).
        sock.set_nonblocking(true).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let mut buf = [0u8; 256];
        let mut pings = 0;
        while let Ok(n) = sock.recv(&mut buf) {
            pings += usize::from(&buf[..n] == b"WATCHDOG=1");
        }
        assert_eq!(pings, 0, "pinged without progress");
        // The loop beats (waiting for a camera counts): pings, and the
        // status follows the source.
        health.set_source(SourceState::Fault, Some("camera gone".into()));
        let beat = std::thread::spawn(move || {
            for _ in 0..40 {
                health.beat();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        sock.set_nonblocking(false).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let m = recv(&sock);
            if !seen.contains(&m) {
                seen.push(m);
            }
        }
        seen.sort();
        assert_eq!(seen, ["STATUS=camera gone; 0 viewers", "WATCHDOG=1"]);
        beat.join().unwrap();
        drop(task);
        std::fs::remove_dir_all(dir).ok();
    }
}
