//! The RTSP server's I/O: accepts connections within the limits, feeds
//! bytes to each connection's policy object ([`super::conn::Conn`]), writes
//! what it answers, sleeps until its deadline, and starts one media task per
//! playing session ([`super::sender`]).
//!
//! Tasks run on smol. Nothing here can block the encoder: each session reads
//! its own bounded [`crate::fanout::Subscription`]; a session whose peer
//! stops reading loses frames to the next keyframe, and its connection is
//! closed when a write makes no progress for [`super::sender::WRITE_TIMEOUT`].

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::{Async, Task, Timer};

use super::auth::Authenticator;
use super::conn::{CloseReason, Conn, ConnConfig, Count, Env, Event};
use super::limits::{ConnSlot, ConnTable, LimitSettings};
use super::parse::Limits;
use super::response::Response;
use super::sender::{Outlet, Output, Progress, Sink, TrackProgress, UdpPair, media_task};
use super::session::{Admission, MediaTransport, PlayParams, Settings, Track, TrackParams};
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
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            path: "/live".into(),
            session_timeout: Duration::from_secs(60),
            max_payload: 1400,
            max_viewers: 32,
            queue_frames: 30,
            parse_limits: Limits::default(),
            limits: LimitSettings::default(),
            udp: true,
            udp_ports: None,
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

/// A playing session's media task and what it reports back.
struct Media {
    task: Task<io::Result<()>>,
    progress: Arc<Progress>,
    /// The client's RTCP addresses of UDP tracks.
    routes: Vec<SocketAddr>,
}

enum Wake {
    Read(io::Result<usize>),
    Deadline,
    MediaEnded(io::Result<()>),
}

/// Why a connection ended.
#[derive(Debug)]
enum Disconnect {
    /// The connection's policy closed it ([`Conn`]).
    Conn(CloseReason),
    /// The viewer closed its side.
    PeerClosed,
    Read(io::Error),
    Write(io::Error),
    /// The media task finished (the fan-out closed).
    StreamEnded,
    Media(io::Error),
    /// A UDP PLAY on a server without a UDP port pair.
    NoUdpPair,
}

impl std::fmt::Display for Disconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Conn(r) => r.fmt(f),
            Self::PeerClosed => f.write_str("closed by the viewer"),
            Self::Read(e) => write!(f, "read failed: {e}"),
            Self::Write(e) => write!(f, "write failed: {e}"),
            Self::StreamEnded => f.write_str("the stream ended"),
            Self::Media(e) => write!(f, "sending media failed: {e}"),
            Self::NoUdpPair => f.write_str("UDP transport without a UDP port pair"),
        }
    }
}

impl std::error::Error for Disconnect {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Conn(r) => Some(r),
            Self::Read(e) | Self::Write(e) | Self::Media(e) => Some(e),
            Self::PeerClosed | Self::StreamEnded | Self::NoUdpPair => None,
        }
    }
}

/// Answers a connection over the limits with 503 and closes it.
async fn refuse(stream: Async<TcpStream>, why: String) {
    let mut bytes = Vec::new();
    Response::error(503, why)
        .with_header("Retry-After", "10")
        .write_to(None, &mut bytes);
    let mut s: &Async<TcpStream> = &stream;
    let write = smol::io::AsyncWriteExt::write_all(&mut s, &bytes);
    let _ = smol::future::or(async { write.await.ok() }, async {
        Timer::after(Duration::from_secs(2)).await;
        None
    })
    .await;
    let _ = stream.get_ref().shutdown(Shutdown::Both);
}

/// One RTSP connection's I/O: its socket, its [`Conn`] and its media task.
struct ConnTask {
    shared: Arc<Shared>,
    peer: SocketAddr,
    stream: Arc<Async<TcpStream>>,
    out: Arc<Output>,
    conn: Conn,
    /// Stamped by the RTCP receiver when a UDP viewer reports.
    activity: Arc<AtomicU64>,
    media: Option<Media>,
    started: Instant,
    _slot: ConnSlot<Shared>,
}

impl ConnTask {
    fn new(
        shared: Arc<Shared>,
        stream: Async<TcpStream>,
        peer: SocketAddr,
        slot: ConnSlot<Shared>,
    ) -> Self {
        let stream = Arc::new(stream);
        let now = Instant::now();
        let (settings, limits) = shared.live();
        let config = ConnConfig {
            parse_limits: shared.opts.parse_limits,
            limits,
            local_ip: stream
                .get_ref()
                .local_addr()
                .map(|a| a.ip())
                .unwrap_or(shared.opts.listen.ip()),
            udp_server_ports: shared.udp.as_ref().map(|u| u.ports).unwrap_or_default(),
            sdp_session_id: shared.sdp_session_id,
        };
        let env: Arc<dyn Env> = shared.clone();
        Self {
            out: Arc::new(Output {
                stream: stream.clone(),
                lock: smol::lock::Mutex::new(()),
            }),
            conn: Conn::new(settings, config, env, peer, now, fastrand::Rng::new()),
            activity: Arc::new(AtomicU64::new(0)),
            media: None,
            started: now,
            stream,
            peer,
            shared,
            _slot: slot,
        }
    }

    async fn run(mut self) {
        log::debug!("rtsp: connection from {}", self.peer);
        let reason = self.serve().await;
        let frames = self
            .media
            .as_ref()
            .map(|m| m.progress.frames.load(Ordering::Relaxed));
        let _ = stop_media(&self.shared, &mut self.conn, &mut self.media).await;
        let had_session = self.conn.close_session();
        let _ = self.stream.get_ref().shutdown(Shutdown::Both);
        if had_session || frames.is_some() {
            log::info!(
                "rtsp: viewer {} left after {:.0} s{}: {reason}",
                self.peer,
                self.started.elapsed().as_secs_f64(),
                frames
                    .map(|f| format!(", {f} frames sent"))
                    .unwrap_or_default()
            );
        } else {
            log::debug!("rtsp: connection from {} ended: {reason}", self.peer);
        }
    }

    /// Serves until the connection should close; returns why.
    async fn serve(&mut self) -> Disconnect {
        let mut scratch = vec![0u8; READ_CHUNK];
        loop {
            if let Err(end) = self.flush().await {
                return end;
            }
            let Some(deadline) = self.conn.poll_timeout() else {
                // Closed: flush returned the reason already.
                return Disconnect::PeerClosed;
            };
            match self.wait(deadline, &mut scratch).await {
                Wake::Read(Ok(0)) => return Disconnect::PeerClosed,
                Wake::Read(Ok(n)) => self.conn.handle_bytes(Instant::now(), &scratch[..n]),
                Wake::Read(Err(e)) => return Disconnect::Read(e),
                Wake::Deadline => {}
                Wake::MediaEnded(result) => {
                    if let Some(m) = self.media.take() {
                        unroute(&self.shared, &m.routes);
                        self.shared.stats.playing.fetch_sub(1, Ordering::Relaxed);
                    }
                    return match result {
                        Ok(()) => Disconnect::StreamEnded,
                        Err(e) => Disconnect::Media(e),
                    };
                }
            }
            // UDP viewers keep their session alive with RTCP to our port.
            let stamp = self.activity.load(Ordering::Relaxed);
            if stamp > 0 {
                self.conn
                    .handle_activity(self.shared.epoch + Duration::from_millis(stamp));
            }
            self.conn.handle_timeout(Instant::now());
        }
    }

    /// Writes what the connection has to send and carries out its events.
    async fn flush(&mut self) -> Result<(), Disconnect> {
        loop {
            while let Some(bytes) = self.conn.poll_transmit() {
                if let Err(e) = self.out.write_all(&bytes).await {
                    // An answer before closing may go unwritten; the reason
                    // for closing matters more than the failed write.
                    return Err(match self.conn.poll_event() {
                        Some(Event::Close(r)) => Disconnect::Conn(r),
                        _ => Disconnect::Write(e),
                    });
                }
            }
            let Some(event) = self.conn.poll_event() else {
                return Ok(());
            };
            match event {
                Event::Close(reason) => return Err(Disconnect::Conn(reason)),
                Event::AwaitStream(within) => {
                    self.shared.fanout.wait_stream_info(within).await;
                }
                Event::Pause => {
                    stop_media(&self.shared, &mut self.conn, &mut self.media).await;
                    log::info!("rtsp: viewer {} paused", self.peer);
                }
                Event::Teardown => {
                    let frames = stop_media(&self.shared, &mut self.conn, &mut self.media).await;
                    if self.conn.is_closed() {
                        // The session timed out; the Close that follows says so.
                        continue;
                    }
                    log::info!(
                        "rtsp: viewer {} ended its session (TEARDOWN){}",
                        self.peer,
                        frames
                            .map(|f| format!(" after {f} frames"))
                            .unwrap_or_default()
                    );
                }
                Event::Play(params) => self.play(params).await?,
            }
            // Go on with what is buffered (it waited for this event).
            self.conn.handle_bytes(Instant::now(), &[]);
        }
    }

    /// Waits for bytes, a deadline, or the end of the media task.
    async fn wait(&mut self, deadline: Instant, buf: &mut [u8]) -> Wake {
        let stream = self.stream.clone();
        let read = async {
            let mut s: &Async<TcpStream> = &stream;
            Wake::Read(smol::io::AsyncReadExt::read(&mut s, buf).await)
        };
        let timer = async {
            Timer::at(deadline).await;
            Wake::Deadline
        };
        match &mut self.media {
            Some(m) => {
                let ended = async { Wake::MediaEnded((&mut m.task).await) };
                smol::future::or(read, smol::future::or(ended, timer)).await
            }
            None => smol::future::or(read, timer).await,
        }
    }

    /// Starts (or restarts) the session's media task.
    async fn play(&mut self, params: PlayParams) -> Result<(), Disconnect> {
        let shared = self.shared.clone();
        stop_media(&shared, &mut self.conn, &mut self.media).await;
        let progress = Arc::new(Progress {
            video: TrackProgress::starting_at(params.video.map(|p| p.first_seq)),
            audio: TrackProgress::starting_at(params.audio.map(|p| p.first_seq)),
            ..Progress::default()
        });
        let mut routes = Vec::new();
        let mut how = Vec::new();
        let mut outlet = |p: Option<TrackParams>, what: &str| -> Result<_, Disconnect> {
            let Some(params) = p else { return Ok(None) };
            let sink = match params.transport {
                MediaTransport::Tcp { .. } => {
                    how.push(format!("{what} over TCP"));
                    Sink::Tcp(self.out.clone())
                }
                MediaTransport::Udp { rtp, rtcp } => {
                    let pair = shared.udp.clone().ok_or(Disconnect::NoUdpPair)?;
                    shared
                        .rtcp_routes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(rtcp, self.activity.clone());
                    routes.push(rtcp);
                    how.push(format!("{what} over UDP to port {}", rtp.port()));
                    Sink::Udp { pair, rtp, rtcp }
                }
            };
            Ok(Some(Outlet { params, sink }))
        };
        let video = outlet(params.video, "video");
        let audio = outlet(params.audio, "audio");
        let (video, audio) = match (video, audio) {
            (Ok(v), Ok(a)) => (v, a),
            (Err(e), _) | (_, Err(e)) => {
                unroute(&shared, &routes);
                return Err(e);
            }
        };
        let sub = shared.fanout.subscribe(shared.opts.queue_frames);
        let task = smol::spawn(media_task(
            video,
            audio,
            sub,
            progress.clone(),
            shared.opts.max_payload,
        ));
        shared.stats.playing.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "rtsp: viewer {} playing {} (session {}, {} playing)",
            self.peer,
            how.join(", "),
            self.conn.session_id().unwrap_or("?"),
            shared.stats.playing.load(Ordering::Relaxed)
        );
        self.media = Some(Media {
            task,
            progress,
            routes,
        });
        Ok(())
    }
}

fn unroute(shared: &Shared, routes: &[SocketAddr]) {
    if routes.is_empty() {
        return;
    }
    let mut table = shared.rtcp_routes.lock().unwrap_or_else(|e| e.into_inner());
    for addr in routes {
        table.remove(addr);
    }
}

/// Stops a session's media task, keeping its sequence numbers for a resume.
/// Returns how many frames it sent.
async fn stop_media(shared: &Shared, conn: &mut Conn, media: &mut Option<Media>) -> Option<u64> {
    let m = media.take()?;
    unroute(shared, &m.routes);
    m.task.cancel().await;
    shared.stats.playing.fetch_sub(1, Ordering::Relaxed);
    conn.set_next_seq(Track::Video, m.progress.video.next_seq());
    conn.set_next_seq(Track::Audio, m.progress.audio.next_seq());
    Some(m.progress.frames.load(Ordering::Relaxed))
}
