//! One RTSP connection's I/O: its socket, its [`Conn`] (fed the bytes read,
//! its answers written, its events carried out), and the media task of its
//! playing session.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smol::{Async, Task, Timer};

use crate::rtsp::conn::{CloseReason, Conn, ConnConfig, Env, Event};
use crate::rtsp::limits::ConnSlot;
use crate::rtsp::response::Response;
use crate::rtsp::sender::{Outlet, Output, Progress, Sink, TrackProgress, media_task};
use crate::rtsp::session::{MediaTransport, PlayParams, Track, TrackParams};

use super::{READ_CHUNK, Shared};

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
pub(super) async fn refuse(stream: Async<TcpStream>, why: String) {
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
pub(super) struct ConnTask {
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
    pub(super) fn new(
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

    pub(super) async fn run(mut self) {
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
        let sub = shared
            .fanout
            .subscribe(crate::fanout::SinkKind::Rtsp, shared.opts.queue_frames);
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
