//! The HTTP server's I/O: accepts connections within the limits, reads
//! request heads for [`super::request`], writes what it answers, and runs
//! `/live.mp4` streams as fan-out sinks. Nothing here touches the encoder
//! thread: every stream reads its own bounded subscription.

use std::io::{self, IoSlice};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};

use super::api::{self, Status};
use super::fmp4::{self, Fragmenter};
use super::request::{self, Response, Route, Settings};
use super::snapshot::{self, Snapshots};
use crate::fanout::{Fanout, SinkKind};
use crate::rtsp::limits::{ConnSlot, ConnTable, LimitSettings, TokenBucket};

/// A stream write that makes no progress this long drops the viewer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/live.mp4` waits for the stream's first keyframe.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// SO_SNDBUF of stream connections (the kernel doubles it): a slow viewer
/// backs up into its frame queue, which drops to the next keyframe.
const SEND_BUFFER: usize = 256 * 1024;

/// The page: markup, script and styles in one embedded file.
pub const PAGE: &str = include_str!("page.html");

/// What the server is started with.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    pub max_head_bytes: usize,
    pub limits: LimitSettings,
    pub settings: Settings,
    /// Frames queued per `/live.mp4` viewer before it starts losing them.
    pub queue_frames: usize,
    /// `None`: no raw pictures (H.264 passthrough); `/snapshot.jpg` says 501.
    pub snapshots: Option<Arc<Snapshots>>,
    /// WebRTC (WHEP) on this UDP address; `None`: off.
    #[cfg(feature = "webrtc")]
    pub webrtc: Option<crate::webrtc::server::WebrtcOptions>,
}

/// Counters for the API, the metrics and tests.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub connections: AtomicUsize,
    /// `/live.mp4` streams open now.
    /// Their bytes and drops are counted by the fan-out
    /// ([`crate::fanout::Fanout::totals`]).
    pub viewers: AtomicUsize,
    pub refused: AtomicU64,
}

/// Fills a [`Status`] on request (the wiring knows where the facts are).
pub type StatusSource = Arc<dyn Fn(&HttpStats) -> Status + Send + Sync>;

struct Shared {
    opts: HttpOptions,
    fanout: Arc<Fanout>,
    status: StatusSource,
    stats: Arc<HttpStats>,
    conns: Mutex<ConnTable>,
    #[cfg(feature = "webrtc")]
    webrtc: Option<Arc<crate::webrtc::Webrtc>>,
}

/// A bound HTTP server, ready to [`run`](HttpServer::run).
pub struct HttpServer {
    listener: Async<TcpListener>,
    shared: Arc<Shared>,
}

/// The status for `/api/status` and `/metrics`, WebRTC peers included.
fn status_now(shared: &Shared) -> api::Status {
    #[allow(unused_mut)]
    let mut status = (shared.status)(&shared.stats);
    #[cfg(feature = "webrtc")]
    if let Some(w) = &shared.webrtc {
        status.webrtc_viewers = w.stats().peers.load(std::sync::atomic::Ordering::Relaxed);
    }
    status
}

impl HttpServer {
    pub fn bind(opts: HttpOptions, fanout: Arc<Fanout>, status: StatusSource) -> io::Result<Self> {
        let listener = Async::<TcpListener>::bind(opts.listen)?;
        #[cfg(feature = "webrtc")]
        let webrtc = opts.webrtc.as_ref().and_then(|w| {
            match crate::webrtc::Webrtc::bind(w, fanout.clone()) {
                Ok(rtc) => {
                    let list: Vec<String> = rtc.candidates().iter().map(|c| c.to_string()).collect();
                    let tcp = match rtc.tcp_candidates().first() {
                        Some(a) => format!(", ICE-TCP on port {}", a.port()),
                        None => String::new(),
                    };
                    log::info!(
                        "webrtc: listening on udp {} port {}{tcp} (WHEP at /live/whep; candidates {})",
                        w.listen.ip(),
                        rtc.port(),
                        list.join(", ")
                    );
                    Some(rtc)
                }
                Err(e) => {
                    log::error!(
                        "webrtc: cannot start on udp {} and tcp {}: {e}; going on without WebRTC (set webrtc-udp and webrtc-tcp = \"ADDR:PORT\" or off)",
                        w.listen,
                        w.tcp.map_or("off".to_string(), |a| a.to_string())
                    );
                    None
                }
            }
        });
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                opts,
                fanout,
                status,
                stats: Arc::default(),
                conns: Mutex::new(ConnTable::default()),
                #[cfg(feature = "webrtc")]
                webrtc,
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// Accepts connections until the future is dropped.
    pub async fn run(self) {
        let shared = self.shared;
        #[cfg(feature = "webrtc")]
        let _webrtc = shared.webrtc.clone().map(|w| smol::spawn(w.run()));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    log::warn!("http: accept failed: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let admitted = shared
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(peer.ip(), &shared.opts.limits);
            match admitted {
                Ok(()) => {
                    let slot = ConnSlot::new(
                        shared.clone(),
                        peer.ip(),
                        |s: &Shared| &s.conns,
                        |s: &Shared| &s.stats.connections,
                    );
                    smol::spawn(async move {
                        if let Err(e) = serve(slot.owner(), stream).await {
                            log::debug!("http: {peer}: {e}");
                        }
                        drop(slot);
                    })
                    .detach();
                }
                Err(why) => {
                    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    log::debug!("http: refusing {peer}: {why}");
                    let bytes = Response::error(503, why.to_string())
                        .header("Retry-After", "10")
                        .to_bytes(true, false);
                    smol::spawn(async move {
                        let _ = with_timeout(WRITE_TIMEOUT, (&stream).write_all(&bytes)).await;
                    })
                    .detach();
                }
            }
        }
    }
}

async fn with_timeout<T>(limit: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    smol::future::or(f, async {
        Timer::after(limit).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}

/// Serves one connection: requests in turn (keep-alive), until it closes,
/// idles out or turns into a stream.
async fn serve(shared: &Shared, stream: Async<TcpStream>) -> io::Result<()> {
    let limits = &shared.opts.limits;
    let max = shared.opts.max_head_bytes;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    let mut bucket = TokenBucket::new(limits.max_requests_per_second, Instant::now());
    let mut first = true;
    loop {
        // The head must arrive within the handshake timeout once started;
        // between requests the idle timeout applies.
        let limit = if first || !buf.is_empty() {
            limits.handshake_timeout
        } else {
            limits.idle_timeout
        };
        let (req, used) = loop {
            match request::parse(&buf, max) {
                Ok(Some(x)) => break x,
                Ok(None) => {}
                Err(e) => {
                    let status = if matches!(e, request::ParseError::TooLarge(_)) {
                        431
                    } else {
                        400
                    };
                    let r = Response::error(status, e.to_string()).to_bytes(true, false);
                    with_timeout(WRITE_TIMEOUT, (&stream).write_all(&r)).await?;
                    return Ok(());
                }
            }
            let n = with_timeout(limit, (&stream).read(&mut chunk)).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        first = false;
        // Only WHEP reads a body (its SDP offer).
        let body = used + req.content_length;
        while buf.len() < body {
            let n = with_timeout(limits.handshake_timeout, (&stream).read(&mut chunk)).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let content: Vec<u8> = buf.drain(..body).skip(used).collect();
        let now = Instant::now();
        let route = if bucket.take(now) {
            request::route(&req, &shared.opts.settings, now)
        } else {
            Route::Reply(Response::error(429, "too many requests; slow down"))
        };
        let head_only = req.method == "HEAD";
        let response = match route {
            Route::Live => return live(shared, stream).await,
            Route::Page => Response::new(200, "text/html; charset=utf-8", PAGE.into()),
            Route::Status => Response::new(
                200,
                "application/json",
                api::status_json(&status_now(shared)).into_bytes(),
            ),
            Route::Metrics => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                api::metrics(&status_now(shared)).into_bytes(),
            ),
            Route::Snapshot => snapshot_response(shared.opts.snapshots.as_deref()).await,
            #[cfg(feature = "webrtc")]
            Route::Whep => super::whep::respond(
                shared
                    .webrtc
                    .as_ref()
                    .map(|w| w as &dyn super::whep::Sessions),
                &req,
                &content,
            ),
            #[cfg(not(feature = "webrtc"))]
            Route::Whep => {
                let _ = content;
                Response::error(
                    501,
                    "WebRTC (WHEP) playback is not in this build (cargo feature webrtc)",
                )
            }
            Route::Reply(r) => r,
        };
        let bytes = response.to_bytes(req.close, head_only);
        with_timeout(WRITE_TIMEOUT, (&stream).write_all(&bytes)).await?;
        if req.close {
            return Ok(());
        }
    }
}

/// JPEG quality of `/snapshot.jpg`.
const SNAPSHOT_QUALITY: u8 = 85;

/// `/snapshot.jpg`: the next raw picture, encoded off the capture thread.
async fn snapshot_response(snapshots: Option<&Snapshots>) -> Response {
    let Some(snaps) = snapshots else {
        return Response::error(
            501,
            "the camera delivers H.264 and edgestream passes it through without decoding: \
             there is no raw picture to make a JPEG from; use /live.mp4 or the page",
        );
    };
    let Some(pic) = snaps.next(Duration::from_secs(3)).await else {
        return Response::error(503, "no picture within 3 s; the source is not delivering")
            .header("Retry-After", "1");
    };
    match smol::unblock(move || snapshot::encode_jpeg(&pic, SNAPSHOT_QUALITY)).await {
        Ok(jpeg) => Response::new(200, "image/jpeg", jpeg),
        Err(e) => Response::error(500, format!("cannot encode the JPEG: {e}")),
    }
}

/// Counts a stream as a viewer while it lives.
struct Viewer<'a>(&'a HttpStats);

impl<'a> Viewer<'a> {
    fn new(stats: &'a HttpStats) -> Self {
        stats.viewers.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for Viewer<'_> {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Writes all of `slices`, giving up when a write makes no progress for
/// [`WRITE_TIMEOUT`].
async fn write_slices(stream: &Async<TcpStream>, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        let n = with_timeout(WRITE_TIMEOUT, (&*stream).write_vectored(slices)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// `/live.mp4`: waits for this viewer's first keyframe (subscribing asks
/// the encoder for one), then writes the head, the init segment and one
/// chunk per frame until the viewer goes or the stream parameters change.
async fn live(shared: &Shared, stream: Async<TcpStream>) -> io::Result<()> {
    let not_ready = |why: &str| Response::error(503, why).header("Retry-After", "1");
    let Some(info) = shared.fanout.wait_stream_info(FIRST_FRAME_TIMEOUT).await else {
        let r = not_ready("no picture yet; the source is starting").to_bytes(true, false);
        return with_timeout(WRITE_TIMEOUT, (&stream).write_all(&r)).await;
    };
    let sub = shared
        .fanout
        .subscribe(SinkKind::Http, shared.opts.queue_frames);
    let first = smol::future::or(async { sub.recv().await }, async {
        Timer::after(FIRST_FRAME_TIMEOUT).await;
        None
    })
    .await;
    let Some(first) = first else {
        let r = not_ready("no keyframe within 5 s").to_bytes(true, false);
        return with_timeout(WRITE_TIMEOUT, (&stream).write_all(&r)).await;
    };
    let _viewer = Viewer::new(&shared.stats);
    let _ = socket2::SockRef::from(stream.get_ref()).set_send_buffer_size(SEND_BUFFER);
    let _ = stream.get_ref().set_nodelay(true);
    // Media time 0 is the first frame's capture; the page turns media time
    // into capture time (and so its display delay) with this.
    let epoch_ms = crate::clock::wall_time_of(
        first.pts,
        crate::clock::monotonic_now(),
        std::time::SystemTime::now(),
    )
    .duration_since(UNIX_EPOCH)
    .map_or(0, |d| d.as_millis());
    let mut out = Response::new(200, "video/mp4", Vec::new())
        .header("X-Edgestream-Epoch-Ms", &epoch_ms.to_string())
        .header(
            "X-Edgestream-Codec",
            &format!("avc1.{}", info.params.profile.profile_level_id()),
        )
        .header("X-Content-Type-Options", "nosniff")
        .chunked_head();
    let init = fmp4::init_segment(&info);
    request::chunk_size_line(init.len(), &mut out);
    out.extend_from_slice(&init);
    out.extend_from_slice(b"\r\n");
    write_slices(&stream, &mut [IoSlice::new(&out)]).await?;
    sub.meter().sent(out.len());
    let mut sent = out.len() as u64;
    let frame_ticks = (u64::from(fmp4::TIMESCALE) * u64::from(info.fps.den)
        / u64::from(info.fps.num.max(1))) as u32;
    let mut muxer = Fragmenter::new(frame_ticks);
    let mut head = Vec::with_capacity(128);
    let mut prefixes: Vec<[u8; 4]> = Vec::with_capacity(8);
    let mut frame = first;
    let result = loop {
        let payload = muxer.fragment(&frame, &mut head);
        let mut size_line = Vec::with_capacity(12);
        request::chunk_size_line(head.len() + payload as usize, &mut size_line);
        let nals: Vec<&[u8]> = frame.nals().filter(|n| fmp4::in_sample(n)).collect();
        prefixes.clear();
        prefixes.extend(nals.iter().map(|n| (n.len() as u32).to_be_bytes()));
        let mut slices = Vec::with_capacity(3 + 2 * nals.len());
        slices.push(IoSlice::new(&size_line));
        slices.push(IoSlice::new(&head));
        for (p, n) in prefixes.iter().zip(&nals) {
            slices.push(IoSlice::new(p));
            slices.push(IoSlice::new(n));
        }
        slices.push(IoSlice::new(b"\r\n"));
        let len: usize = slices.iter().map(|s| s.len()).sum();
        if let Err(e) = write_slices(&stream, &mut slices).await {
            break Err(e);
        }
        sent += len as u64;
        sub.meter().sent(len);
        let Some(next) = sub.recv().await else {
            break Ok(());
        };
        if shared
            .fanout
            .stream_info()
            .is_some_and(|now| !Arc::ptr_eq(&now, &info))
        {
            // New size or parameter sets: the player must start over.
            break Ok(());
        }
        frame = next;
    };
    let dropped = sub.stats().dropped.load(Ordering::Relaxed);
    log::debug!("http: /live.mp4 viewer ended after {sent} bytes, {dropped} frames dropped");
    drop(sub);
    // The last chunk, unless the viewer is the one that stopped reading.
    result?;
    with_timeout(WRITE_TIMEOUT, (&stream).write_all(b"0\r\n\r\n")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_say_why_they_cannot_be_had() {
        let passthrough = smol::block_on(snapshot_response(None));
        assert_eq!(passthrough.status, 501);
        assert!(String::from_utf8_lossy(&passthrough.body).contains("passes it through"));
        let idle = Snapshots::default();
        assert_eq!(smol::block_on(snapshot_response(Some(&idle))).status, 503);
    }
}
