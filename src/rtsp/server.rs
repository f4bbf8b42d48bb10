//! The RTSP server's I/O: accepts connections within the limits, feeds
//! bytes to each connection's policy object ([`super::conn::Conn`]), writes
//! what it answers, sleeps until its deadline, and starts one media task per
//! playing session ([`super::sender`]). Accepting and the shared state are
//! here; one connection's loop is in [`connection`].
//!
//! Tasks run on smol. Nothing here can block the encoder: each session reads
//! its own bounded [`crate::fanout::Subscription`]; a session whose peer
//! stops reading loses frames to the next keyframe, and its connection is
//! closed when a write makes no progress for [`super::sender::WRITE_TIMEOUT`].

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::{Async, Task, Timer};

mod connection;
use connection::{ConnTask, refuse};

use super::auth::Authenticator;
use super::conn::{Count, Env};
use super::limits::{ConnSlot, ConnTable, LimitSettings};
use super::parse::Limits;
use super::sender::UdpPair;
use super::session::{Admission, Settings};
use crate::fanout::Fanout;
use crate::media::StreamInfo;
use crate::rtp;

/// SO_SNDBUF of RTSP connections (the kernel doubles it).
const SEND_BUFFER: usize = 256 * 1024;

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What the server is started with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub path: String,
    pub session_timeout: Duration,
    pub max_payload: usize,
    pub max_viewers: usize,
    /// Frames queued per viewer before it starts losing them.
    pub queue_frames: usize,
    /// Size limits for requests.
    pub parse_limits: Limits,
    /// Connection, rate and timeout limits.
    pub limits: LimitSettings,
    /// Offer UDP transport (binds an RTP/RTCP port pair).
    pub udp: bool,
    /// Where the UDP pair is taken from (inclusive); `None`: random ports.
    pub udp_ports: Option<(u16, u16)>,
    /// Require credentials (all requests but OPTIONS).
    pub auth: Option<Arc<Authenticator>>,
    /// Offer the silent AAC track beside the video (`audio = "silent"`).
    pub audio: bool,
}

impl Default for ServerOptions {
    /// The config keys' defaults (defined once, in the key table).
    fn default() -> Self {
        let c = crate::config::Config::default();
        Self {
            listen: c
                .rtsp
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8554))),
            path: c.rtsp_path,
            session_timeout: c.session_timeout,
            max_payload: c.rtp_payload_size,
            max_viewers: c.max_viewers,
            queue_frames: 30,
            parse_limits: Limits::default(),
            limits: LimitSettings::default(),
            udp: true,
            udp_ports: c.rtsp_udp_ports,
            auth: None,
            audio: false,
        }
    }
}

/// Counters the stats line and tests read.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: AtomicUsize,
    /// Sessions set up (each holds a viewer slot).
    pub sessions: AtomicUsize,
    /// Sessions currently sending media.
    pub playing: AtomicUsize,
    pub bad_requests: AtomicU64,
    /// Connections refused by the connection limits.
    pub refused: AtomicU64,
    /// Requests answered 503 for exceeding the request rate.
    pub rate_limited: AtomicU64,
    /// Requests answered 401.
    pub auth_failures: AtomicU64,
}

struct Viewers {
    /// Changed live by [`ServerControl::update`].
    max: AtomicUsize,
    stats: Arc<ServerStats>,
}

impl Admission for Viewers {
    fn try_admit(&self) -> bool {
        self.stats
            .sessions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max.load(Ordering::Relaxed)).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.stats.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Env for Shared {
    fn stream_info(&self) -> Option<Arc<StreamInfo>> {
        self.fanout.stream_info()
    }

    fn last_pts(&self) -> Option<Duration> {
        self.fanout.last_pts()
    }

    fn admission(&self) -> &dyn Admission {
        &self.viewers
    }

    fn count(&self, what: Count) {
        let counter = match what {
            Count::BadRequest => &self.stats.bad_requests,
            Count::RateLimited => &self.stats.rate_limited,
            Count::AuthFailure => &self.stats.auth_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct Shared {
    opts: ServerOptions,
    /// Session settings (users) and connection limits as now configured:
    /// replaced on reload, read when a connection is accepted.
    live: Mutex<(Arc<Settings>, LimitSettings)>,
    fanout: Arc<Fanout>,
    udp: Option<Arc<UdpPair>>,
    viewers: Viewers,
    stats: Arc<ServerStats>,
    /// UDP sessions' RTCP source address -> the connection's activity stamp.
    rtcp_routes: Mutex<HashMap<SocketAddr, Arc<AtomicU64>>>,
    epoch: Instant,
    sdp_session_id: u64,
    conn_table: Mutex<ConnTable>,
    /// When a refusal was last logged at warning level.
    last_refusal_log: Mutex<Option<Instant>>,
}

impl Shared {
    /// Logs refused connections without flooding the log: one warning per
    /// 10 s, the rest at debug level.
    fn log_refusal(&self, peer: SocketAddr, why: &super::limits::Refusal) {
        let mut last = self
            .last_refusal_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            log::warn!(
                "rtsp: refusing {peer}: {why} ({} refused so far)",
                self.stats.refused.load(Ordering::Relaxed)
            );
        } else {
            log::debug!("rtsp: refusing {peer}: {why}");
        }
    }

    fn live(&self) -> (Arc<Settings>, LimitSettings) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn millis_since_epoch(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Changes a running server's users and limits (a reload). Connections
/// accepted from then on get them; open ones, and their viewers, carry on.
pub struct ServerControl(Arc<Shared>);

impl ServerControl {
    pub fn update(
        &self,
        auth: Option<Arc<crate::rtsp::auth::Authenticator>>,
        limits: LimitSettings,
        max_viewers: usize,
    ) {
        let mut live = self.0.live.lock().unwrap_or_else(|e| e.into_inner());
        let settings = Settings {
            auth,
            ..Settings::clone(&live.0)
        };
        *live = (Arc::new(settings), limits);
        self.0.viewers.max.store(max_viewers, Ordering::Relaxed);
    }
}

/// A bound RTSP server, ready to [`run`](RtspServer::run).
pub struct RtspServer {
    listener: Async<TcpListener>,
    shared: Arc<Shared>,
}

impl RtspServer {
    /// Binds the TCP listener (and the UDP pair) and prepares the server.
    pub fn bind(opts: ServerOptions, fanout: Arc<Fanout>) -> io::Result<Self> {
        let listener = Async::<TcpListener>::bind(opts.listen)?;
        let local = listener.get_ref().local_addr()?;
        let udp = if opts.udp {
            Some(Arc::new(UdpPair::bind(local.ip(), opts.udp_ports)?))
        } else {
            None
        };
        let stats = Arc::new(ServerStats::default());
        let settings = Arc::new(Settings {
            path: opts.path.trim_end_matches('/').to_string(),
            session_timeout: opts.session_timeout,
            idle_timeout: opts.limits.idle_timeout,
            udp: udp.is_some(),
            auth: opts.auth.clone(),
            audio: opts.audio,
        });
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                viewers: Viewers {
                    max: AtomicUsize::new(opts.max_viewers),
                    stats: stats.clone(),
                },
                live: Mutex::new((settings, opts.limits)),
                opts,
                fanout,
                udp,
                stats,
                rtcp_routes: Mutex::new(HashMap::new()),
                conn_table: Mutex::new(ConnTable::default()),
                last_refusal_log: Mutex::new(None),
                epoch: Instant::now(),
                sdp_session_id: fastrand::u64(1..u64::MAX / 2),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// The UDP RTP/RTCP ports, if UDP is offered.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        self.shared.udp.as_ref().map(|u| u.ports)
    }

    pub fn stats(&self) -> Arc<ServerStats> {
        self.shared.stats.clone()
    }

    /// A handle to change users and limits while the server runs.
    pub fn control(&self) -> ServerControl {
        ServerControl(self.shared.clone())
    }

    /// Accepts connections until the future is dropped.
    pub async fn run(self) {
        let shared = self.shared;
        let mut background: Vec<Task<()>> = Vec::new();
        if shared.udp.is_some() {
            background.push(smol::spawn(receive_rtcp(shared.clone())));
            background.push(smol::spawn(drain_rtp(shared.clone())));
        }
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.get_ref().set_nodelay(true);
                    // A bounded kernel buffer: a slow viewer backs up into its
                    // frame queue (which drops to the next keyframe) within
                    // about a second instead of megabytes of stale video.
                    let _ =
                        socket2::SockRef::from(stream.get_ref()).set_send_buffer_size(SEND_BUFFER);
                    let admitted = shared
                        .conn_table
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .admit(peer.ip(), &shared.live().1);
                    match admitted {
                        Ok(()) => {
                            let slot = ConnSlot::new(
                                shared.clone(),
                                peer.ip(),
                                |s: &Shared| &s.conn_table,
                                |s: &Shared| &s.stats.connections,
                            );
                            let task = ConnTask::new(shared.clone(), stream, peer, slot);
                            smol::spawn(task.run()).detach();
                        }
                        Err(refusal) => {
                            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                            shared.log_refusal(peer, &refusal);
                            smol::spawn(refuse(stream, refusal.to_string())).detach();
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors, say: do not spin.
                    log::warn!("rtsp: accept failed: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Receives RTCP from UDP viewers: receiver reports keep sessions alive.
async fn receive_rtcp(shared: Arc<Shared>) {
    let Some(udp) = &shared.udp else { return };
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = udp.rtcp.recv_from(&mut buf).await else {
            Timer::after(Duration::from_millis(100)).await;
            continue;
        };
        if !rtp::inspect_rtcp(&buf[..n]).valid {
            continue;
        }
        let route = shared
            .rtcp_routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&from)
            .cloned();
        if let Some(activity) = route {
            activity.store(shared.millis_since_epoch(), Ordering::Relaxed);
        }
    }
}

/// Reads and discards what clients send to the RTP port (NAT punch packets).
async fn drain_rtp(shared: Arc<Shared>) {
    let Some(udp) = &shared.udp else { return };
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    loop {
        if udp.rtp.read_with(|s| s.recv(&mut buf)).await.is_err() {
            Timer::after(Duration::from_millis(100)).await;
        }
    }
}
