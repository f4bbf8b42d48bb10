//! Push targets: the stream sent as FLV to servers, raw over TCP
//! (crtmpserver's inboundLiveFlv) or by RTMP publish (nginx-rtmp, SRS,
//! MediaMTX, YouTube), reconnecting forever.
//!
//! Each target is one smol task with its own fan-out subscription, its own
//! connection and its own backoff; nothing it does can reach the encoder or
//! another sink. The protocol work is pure ([`crate::flv`],
//! [`crate::rtmp`]); this module is the I/O around it: name resolution (off
//! the executor thread), connecting, writing with a no-progress timeout,
//! reading what the server says, and retrying.

pub mod backoff;
mod conn;
pub mod publisher;
pub mod target;
pub mod tls;

use std::fmt;
use std::io;
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smol::{Async, Task, Timer};

use crate::fanout::{Fanout, SinkKind, Subscription};
use crate::flv::audio::{AudioTag, SilentTrack};
use crate::flv::{self, Skipped, VideoTagger};
use crate::health::{Health, PushHealth};
use crate::media::{EncodedFrame, StreamInfo};
use crate::rtmp::{SessionError, handshake};
use backoff::{Note, Reconnect};
use conn::{Conn, read_loop};
use publisher::{FlvPublisher, Publisher, RtmpPublisher};
pub use target::{Protocol, PushTarget, TargetError};
pub use tls::TlsSetupError;
use tls::{Tls, TlsError};

/// Frames queued per target before it starts losing them (to the next
/// keyframe). About a second at 30 fps.
pub const QUEUE_FRAMES: usize = 30;
/// Longest wait for name resolution plus the TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait from connected to publishing (handshake, connect, publish).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that makes no progress this long ends the connection: a dead or
/// stalled server is noticed within this time.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean stop waits for targets to say goodbye.
pub const STOP_GRACE: Duration = Duration::from_secs(1);
/// SO_SNDBUF of push connections (the kernel doubles it): a slow server
/// backs up into the frame queue (which drops to the next keyframe) within
/// about a second rather than into megabytes of stale video.
const SEND_BUFFER: usize = 128 * 1024;
/// Read size for what the server sends.
const READ_SIZE: usize = 16 * 1024;

/// Why one connection to a target ended.
#[derive(Debug)]
pub enum PushError {
    Resolve {
        host: String,
        error: io::Error,
    },
    NoAddress {
        host: String,
    },
    Connect {
        addr: SocketAddr,
        error: io::Error,
    },
    Timeout {
        what: &'static str,
        limit: Duration,
    },
    /// A step that must finish within `limit` did not.
    Deadline {
        what: &'static str,
        limit: Duration,
    },
    Io {
        what: &'static str,
        error: io::Error,
    },
    /// The server closed the connection.
    Closed {
        during: &'static str,
    },
    Rtmp(SessionError),
    Tls(TlsError),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            Self::NoAddress { host } => write!(f, "{host} has no address"),
            Self::Connect { addr, error } => write!(f, "connect to {addr}: {}", io_text(error)),
            Self::Timeout { what, limit } => {
                write!(f, "{what}: no progress for {} s", limit.as_secs())
            }
            Self::Deadline { what, limit } => {
                write!(f, "{what}: not done within {} s", limit.as_secs())
            }
            Self::Io { what, error } => write!(f, "{what}: {}", io_text(error)),
            Self::Closed { during } => write!(f, "the server closed the connection {during}"),
            Self::Rtmp(e) => write!(f, "{e}"),
            Self::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Resolve { error, .. } | Self::Connect { error, .. } | Self::Io { error, .. } => {
                Some(error)
            }
            Self::Rtmp(e) => Some(e),
            Self::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// The audio track of push targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Audio {
    /// Video only.
    #[default]
    Off,
    /// AAC-LC mono silence beside the video.
    Silent,
}

/// Settings shared by all targets.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `push-tls-ca`: trust only these CAs for RTMPS.
    pub tls_ca: Option<std::path::PathBuf>,
    /// `audio`: a silent AAC track beside the video.
    pub audio: Audio,
}

/// The tracks of one connection: video tags from frames, and the silent
/// audio interleaved by timestamp.
struct Tracks {
    video: VideoTagger,
    tags: Vec<flv::VideoTag>,
    audio: Option<SilentTrack>,
    audio_tags: Vec<AudioTag>,
}

/// Short, stable texts for common socket errors (no "os error N").
fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::BrokenPipe => "the server closed the connection".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Tells push tasks to finish; each says goodbye to its server.
#[derive(Debug, Default)]
pub struct StopSignal {
    set: AtomicBool,
    event: event_listener::Event,
}

impl StopSignal {
    pub fn trigger(&self) {
        self.set.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    pub async fn wait(&self) {
        loop {
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.await;
        }
    }
}

/// The running push targets.
pub struct Pushers {
    tasks: Vec<Task<()>>,
    stop: Arc<StopSignal>,
}

impl Pushers {
    /// Starts one task per target on the smol executor. Each subscribes to
    /// the fan-out here, before returning: call this before the encoder
    /// starts and the targets get the stream from its first keyframe.
    pub fn start(
        targets: &[PushTarget],
        options: &PushOptions,
        fanout: &Arc<Fanout>,
        health: &Health,
    ) -> Result<Self, TlsSetupError> {
        let tls = if targets.iter().any(|t| t.tls) {
            let (config, roots) = tls::client_config(options.tls_ca.as_deref())?;
            log::info!("push: RTMPS certificates are verified against {roots}");
            Some(config)
        } else {
            None
        };
        let stop = Arc::new(StopSignal::default());
        let mut names: Vec<String> = Vec::new();
        let tasks = targets
            .iter()
            .map(|t| {
                // Same display name twice (same server, hidden keys): number them.
                let mut name = t.display_name();
                let dupes = names.iter().filter(|n| n.starts_with(&name)).count();
                if dupes > 0 {
                    name = format!("{name}#{}", dupes + 1);
                }
                names.push(name.clone());
                let link = Link {
                    sub: fanout.subscribe(SinkKind::Push, QUEUE_FRAMES),
                    target: t.clone(),
                    health: health.add_push(name.clone()),
                    name,
                    fanout: fanout.clone(),
                    stop: stop.clone(),
                    tls: tls.clone().filter(|_| t.tls),
                    audio: options.audio == Audio::Silent,
                };
                smol::spawn(link.run())
            })
            .collect();
        Ok(Self { tasks, stop })
    }

    /// Asks every target to finish (RTMP: FCUnpublish and deleteStream)
    /// and waits up to `grace` for them; the rest are cancelled.
    pub async fn stop(self, grace: Duration) {
        self.stop.trigger();
        let deadline = Instant::now() + grace;
        for task in self.tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            // A task still running at the deadline is dropped: cancelled.
            timeout(left, task).await;
        }
    }
}

/// Runs `f` for at most `limit`.
async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// How a connection ended without error.
enum Ended {
    Stopped,
}

/// One target's task state.
struct Link {
    sub: Subscription,
    target: PushTarget,
    name: String,
    fanout: Arc<Fanout>,
    health: Arc<PushHealth>,
    stop: Arc<StopSignal>,
    /// RTMPS: the client configuration.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Send a silent audio track.
    audio: bool,
}

/// Per-connection bookkeeping shared with [`Link::run`].
struct Attempt {
    number: u64,
    /// Video frames sent on this connection.
    frames: u64,
}

impl Link {
    async fn run(self) {
        let sub = &self.sub;
        let mut reconnect = Reconnect::new();
        for number in 0u64.. {
            if self.stop.is_set() {
                return;
            }
            if number > 0 {
                self.health.reconnecting();
            }
            self.health.set(false, "connecting");
            sub.stats().down.store(true, Ordering::Relaxed);
            log::debug!("push {}: connecting (attempt {})", self.name, number + 1);
            let mut attempt = Attempt { number, frames: 0 };
            let result = self.connection(sub, &mut attempt, &mut reconnect).await;
            let error = match result {
                Ok(Ended::Stopped) => {
                    self.health.set(false, "stopped");
                    log::info!(
                        "push {}: stopped after {} frames on this connection",
                        self.name,
                        attempt.frames
                    );
                    return;
                }
                Err(e) => e.to_string(),
            };
            if self.stop.is_set() {
                self.health.set(false, "stopped");
                return;
            }
            let retry = reconnect.failed(Instant::now(), &error, fastrand::f64());
            let delay = retry.delay;
            let secs = delay.as_secs_f64();
            self.health
                .set(false, format!("retry in {secs:.1} s: {error}"));
            let pace = if reconnect.is_backing_off() {
                format!("backing off toward {} s", backoff::MAX_DELAY.as_secs())
            } else {
                format!("retrying at most {} s apart", backoff::FAST_MAX.as_secs())
            };
            match retry.note {
                Note::Quiet | Note::Publishing { .. } => {}
                Note::Lost { published_for } => log::warn!(
                    "push {}: lost after {:.0} s of publishing ({} frames): {error}; retrying in {secs:.1} s, {pace}",
                    self.name,
                    published_for.as_secs_f64(),
                    attempt.frames,
                ),
                Note::Failed => log::warn!(
                    "push {}: {error}; retrying in {secs:.1} s, {pace} (logged again when the error changes)",
                    self.name,
                ),
                Note::BackingOff { down_for } => log::warn!(
                    "push {}: still failing after {:.0} s ({error}); backing off toward {} s",
                    self.name,
                    down_for.as_secs_f64(),
                    backoff::MAX_DELAY.as_secs()
                ),
            }
            smol::future::or(Timer::after(delay), async {
                self.stop.wait().await;
                Instant::now()
            })
            .await;
        }
    }

    /// The protocol side of a new connection.
    fn publisher(&self) -> Box<dyn Publisher> {
        match &self.target.protocol {
            Protocol::Rtmp(params) => {
                let mut random = [0u8; handshake::PACKET_SIZE - 8];
                random.iter_mut().for_each(|b| *b = fastrand::u8(..));
                Box::new(RtmpPublisher::new(params.clone(), &random, self.audio))
            }
            Protocol::Flv { stream_name } => Box::new(FlvPublisher::new(stream_name, self.audio)),
        }
    }

    /// One connection: resolve, connect, set up, publish until an error or
    /// the stop signal.
    async fn connection(
        &self,
        sub: &Subscription,
        attempt: &mut Attempt,
        reconnect: &mut Reconnect,
    ) -> Result<Ended, PushError> {
        let info = loop {
            if let Some(info) = self.fanout.wait_stream_info(Duration::from_secs(1)).await {
                break info;
            }
            if self.stop.is_set() {
                return Ok(Ended::Stopped);
            }
        };
        let stream = match stoppable(&self.stop, self.connect()).await {
            Some(r) => r?,
            None => return Ok(Ended::Stopped),
        };
        let stream = Arc::new(stream);
        let (tx, rx) = smol::channel::bounded::<io::Result<Vec<u8>>>(4);
        let _reader = smol::spawn(read_loop(stream.clone(), tx));
        let tls = match &self.tls {
            Some(config) => {
                Some(Tls::new(config.clone(), &self.target.host).map_err(PushError::Tls)?)
            }
            None => None,
        };
        let mut conn = Conn {
            stream,
            rx,
            publisher: self.publisher(),
            tls,
            meter: sub.meter().clone(),
        };
        let setup_name = conn.publisher.setup_name();
        match stoppable(&self.stop, timeout(SETUP_TIMEOUT, conn.setup(&self.name))).await {
            None => return Ok(Ended::Stopped),
            Some(None) => {
                return Err(PushError::Deadline {
                    what: setup_name,
                    limit: SETUP_TIMEOUT,
                });
            }
            Some(Some(r)) => r?,
        }
        conn.publisher
            .send_metadata(&info)
            .map_err(PushError::Rtmp)?;
        conn.flush("sending metadata").await?;

        // Publishing. A fresh queue on the very first attempt is kept (it
        // starts at a keyframe and holds the stream from the start);
        // otherwise start over at a keyframe requested now.
        if attempt.number > 0 || sub.queued() > QUEUE_FRAMES / 2 {
            sub.resync();
        }
        self.health.set(true, "publishing");
        sub.stats().down.store(false, Ordering::Relaxed);
        match reconnect.published(Instant::now()) {
            Note::Publishing {
                failures,
                down_for: Some(down),
            } if failures > 0 => log::info!(
                "push {}: publishing again after {failures} failed attempt{} ({:.1} s down)",
                self.name,
                if failures == 1 { "" } else { "s" },
                down.as_secs_f64()
            ),
            _ => log::info!("push {}: publishing", self.name),
        }
        let mut tracks = Tracks {
            video: VideoTagger::new(),
            tags: Vec::new(),
            audio: self.audio.then(SilentTrack::new),
            audio_tags: Vec::new(),
        };
        enum Wake {
            Frame(Option<Arc<EncodedFrame>>),
            Input(Result<io::Result<Vec<u8>>, smol::channel::RecvError>),
            Stop,
        }
        loop {
            let wake = smol::future::or(
                async { Wake::Frame(sub.recv().await) },
                smol::future::or(async { Wake::Input(conn.rx.recv().await) }, async {
                    self.stop.wait().await;
                    Wake::Stop
                }),
            )
            .await;
            match wake {
                Wake::Frame(None) => return Ok(Ended::Stopped),
                Wake::Frame(Some(frame)) => {
                    if self
                        .send_frame(&mut conn, &frame, &info, &mut tracks)
                        .await?
                    {
                        attempt.frames += 1;
                    }
                }
                Wake::Input(input) => {
                    conn.handle_input(input, "while publishing", &self.name)
                        .await?
                }
                Wake::Stop => {
                    // Send what is queued (the stop grace bounds this), then
                    // say goodbye.
                    while let Some(frame) = sub.try_recv() {
                        if self
                            .send_frame(&mut conn, &frame, &info, &mut tracks)
                            .await?
                        {
                            attempt.frames += 1;
                        }
                    }
                    conn.publisher.close();
                    conn.flush("sending FCUnpublish and deleteStream").await?;
                    if let Some(tls) = &mut conn.tls {
                        tls.close();
                        conn.send_records("sending TLS close_notify").await?;
                    }
                    let _ = conn.stream.get_ref().shutdown(NetShutdown::Write);
                    return Ok(Ended::Stopped);
                }
            }
        }
    }

    async fn send_frame(
        &self,
        conn: &mut Conn,
        frame: &EncodedFrame,
        info: &StreamInfo,
        tracks: &mut Tracks,
    ) -> Result<bool, PushError> {
        let tags = &mut tracks.tags;
        tags.clear();
        match tracks.video.push(frame, &info.params, tags) {
            Ok(()) => {}
            Err(Skipped::WaitingForKeyframe) => return Ok(false),
            Err(e @ Skipped::TooLarge { .. }) => {
                log::warn!("push {}: frame {}: {e}", self.name, frame.seq);
                return Ok(false);
            }
        }
        let p = &mut conn.publisher;
        for t in tags.iter() {
            // Sequence headers first, then the audio due by this frame, then
            // the frame: both timelines move forward together.
            if !t.sequence_header {
                if let Some(audio) = &mut tracks.audio {
                    tracks.audio_tags.clear();
                    audio.until(t.timestamp, &mut tracks.audio_tags);
                    for a in &tracks.audio_tags {
                        p.send_audio(a.timestamp, &a.body)
                            .map_err(PushError::Rtmp)?;
                    }
                }
            }
            p.send_video(t.timestamp, &t.body)
                .map_err(PushError::Rtmp)?;
        }
        conn.flush("sending video").await?;
        Ok(true)
    }

    /// Resolves the host (on a blocking thread: getaddrinfo may take
    /// seconds) and connects to the first address that answers.
    async fn connect(&self) -> Result<Async<TcpStream>, PushError> {
        let host = self.target.host.clone();
        let port = self.target.port;
        let resolve = smol::unblock(move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        });
        let addrs = timeout(CONNECT_TIMEOUT, resolve)
            .await
            .ok_or(PushError::Timeout {
                what: "resolving the host name",
                limit: CONNECT_TIMEOUT,
            })?
            .map_err(|error| PushError::Resolve {
                host: self.target.host.clone(),
                error,
            })?;
        let mut last = PushError::NoAddress {
            host: self.target.host.clone(),
        };
        for addr in addrs {
            match timeout(CONNECT_TIMEOUT, Async::<TcpStream>::connect(addr)).await {
                Some(Ok(stream)) => {
                    let s = socket2::SockRef::from(stream.get_ref());
                    let _ = s.set_tcp_nodelay(true);
                    let _ = s.set_send_buffer_size(SEND_BUFFER);
                    // Unacknowledged data for this long aborts the connection
                    // (a server gone without a FIN or RST).
                    let _ = s.set_tcp_user_timeout(Some(WRITE_TIMEOUT));
                    return Ok(stream);
                }
                Some(Err(error)) => last = PushError::Connect { addr, error },
                None => {
                    last = PushError::Timeout {
                        what: "connecting",
                        limit: CONNECT_TIMEOUT,
                    }
                }
            }
        }
        Err(last)
    }
}

/// Runs `f` unless the stop signal comes first.
async fn stoppable<T>(stop: &StopSignal, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        stop.wait().await;
        None
    })
    .await
}
