//! Sending one session's media: the RTP packetizer's output written with
//! vectored I/O around the shared frame bytes, over the RTSP connection
//! (interleaved) or UDP, the silent audio track paced by the video's capture
//! times, and RTCP sender reports for each track. Used by the server.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use smol::{Async, Timer};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::audio::{self, SilentSender};
use super::session::{MediaTransport, TrackParams};
use crate::clock;
use crate::fanout::Subscription;
use crate::media::EncodedFrame;
use crate::rtp::{self, NtpTimestamp, Packetizer, RtpPacket};

/// A write to a viewer that makes no progress this long closes its connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest gap between RTCP sender reports (RFC 3550 §6.2 randomizes;
/// we send every 2.5 to 5 s).
pub const SR_INTERVAL: Duration = Duration::from_secs(5);
/// At most this many iovecs per writev (Linux IOV_MAX is 1024).
const MAX_IOV: usize = 512;

/// The server's UDP RTP/RTCP port pair, shared by all UDP sessions.
pub(super) struct UdpPair {
    pub(super) rtp: Async<Socket>,
    pub(super) rtcp: Async<UdpSocket>,
    pub(super) ports: (u16, u16),
}

impl UdpPair {
    /// Binds an even port and the next one: the first free pair in `range`
    /// (inclusive) if given, else a random pair.
    pub(super) fn bind(ip: std::net::IpAddr, range: Option<(u16, u16)>) -> io::Result<Self> {
        let mut last = None;
        let candidates: Vec<u16> = match range {
            Some((first, end)) => (first..end).filter(|p| p % 2 == 0).collect(),
            None => (0..64)
                .map(|_| fastrand::u16(20_000..60_000) & !1)
                .collect(),
        };
        for port in candidates {
            let rtp = Socket::new(
                Domain::for_address(SocketAddr::new(ip, 0)),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            if let Err(e) = rtp.bind(&SockAddr::from(SocketAddr::new(ip, port))) {
                last = Some(e);
                continue;
            }
            // Room for a keyframe to many viewers in one burst.
            let _ = rtp.set_send_buffer_size(1 << 21);
            let rtcp = match UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            return Ok(Self {
                rtp: Async::new(rtp)?,
                rtcp: Async::new(rtcp)?,
                ports: (port, port + 1),
            });
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free UDP port pair")))
    }
}

/// The write side of an RTSP connection, shared by the response writer and
/// an interleaved media task; the lock keeps messages whole.
pub(super) struct Output {
    pub(super) stream: Arc<Async<TcpStream>>,
    pub(super) lock: smol::lock::Mutex<()>,
}

impl Output {
    pub(super) async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let _guard = self.lock.lock().await;
        with_timeout(write_vectored_all(&self.stream, &mut [IoSlice::new(bytes)])).await
    }
}

async fn with_timeout<T>(f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    smol::future::or(f, async {
        Timer::after(WRITE_TIMEOUT).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no write progress for {} s", WRITE_TIMEOUT.as_secs()),
        ))
    })
    .await
}

async fn write_vectored_all(
    stream: &Async<TcpStream>,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = stream
            .write_with(|s| {
                let mut s: &TcpStream = s;
                s.write_vectored(&bufs[..bufs.len().min(MAX_IOV)])
            })
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Where one session's media goes.
pub(super) enum Sink {
    Tcp(Arc<Output>),
    Udp {
        pair: Arc<UdpPair>,
        rtp: SocketAddr,
        rtcp: SocketAddr,
    },
}

impl Sink {
    async fn send_frame(&self, frame: &EncodedFrame, packets: &[RtpPacket]) -> io::Result<()> {
        match self {
            Sink::Tcp(out) => {
                let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(packets.len() * 2);
                for p in packets {
                    iov.push(IoSlice::new(p.header()));
                    iov.push(IoSlice::new(p.payload(frame)));
                }
                let _guard = out.lock.lock().await;
                with_timeout(write_vectored_all(&out.stream, &mut iov)).await
            }
            Sink::Udp { pair: udp, rtp, .. } => {
                let to = SockAddr::from(*rtp);
                for p in packets {
                    let bufs = [IoSlice::new(p.header()), IoSlice::new(p.payload(frame))];
                    with_timeout(udp.rtp.write_with(|s| s.send_to_vectored(&bufs, &to))).await?;
                }
                Ok(())
            }
        }
    }

    /// Sends whole RTP packets that lie back to back in `bytes`: over TCP
    /// as they are (with their interleave prefixes), over UDP `len` bytes
    /// to a datagram.
    async fn send_packets(&self, bytes: &[u8], len: usize) -> io::Result<()> {
        match self {
            Sink::Tcp(out) => out.write_all(bytes).await,
            Sink::Udp { pair: udp, rtp, .. } => {
                let to = SockAddr::from(*rtp);
                for p in bytes.chunks(len.max(1)) {
                    with_timeout(udp.rtp.write_with(|s| s.send_to(p, &to))).await?;
                }
                Ok(())
            }
        }
    }

    async fn send_rtcp(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Tcp(out) => out.write_all(bytes).await,
            Sink::Udp { pair, rtcp, .. } => pair.rtcp.send_to(bytes, *rtcp).await.map(|_| ()),
        }
    }
}

/// Where one track stopped: lets a later PLAY continue its sequence.
#[derive(Debug, Default)]
pub(super) struct TrackProgress {
    pub(super) next_seq: AtomicU32,
    packets: AtomicU32,
    octets: AtomicU32,
}

impl TrackProgress {
    pub(super) fn starting_at(seq: Option<u16>) -> Self {
        Self {
            next_seq: AtomicU32::new(u32::from(seq.unwrap_or_default())),
            ..Self::default()
        }
    }

    /// The sequence number the track goes on with.
    pub(super) fn next_seq(&self) -> u16 {
        self.next_seq.load(Ordering::Relaxed) as u16
    }

    fn counts(&self) -> (u32, u32) {
        (
            self.packets.load(Ordering::Relaxed),
            self.octets.load(Ordering::Relaxed),
        )
    }

    fn record(&self, pk: &Packetizer) {
        self.next_seq
            .store(u32::from(pk.next_seq()), Ordering::Relaxed);
        let (p, o) = pk.counts();
        self.packets.store(p, Ordering::Relaxed);
        self.octets.store(o, Ordering::Relaxed);
    }
}

/// Where a media task stopped: lets a later PLAY continue the sequences.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) video: TrackProgress,
    pub(super) audio: TrackProgress,
    /// Video frames sent.
    pub(super) frames: AtomicU64,
}

/// One track of a playing session: its parameters and where it goes.
pub(super) struct Outlet {
    pub(super) params: TrackParams,
    pub(super) sink: Sink,
}

impl Outlet {
    /// The RTP and RTCP interleave channels (`None` over UDP).
    fn channels(&self) -> (Option<u8>, Option<u8>) {
        match self.params.transport {
            MediaTransport::Tcp {
                rtp_channel,
                rtcp_channel,
            } => (Some(rtp_channel), Some(rtcp_channel)),
            MediaTransport::Udp { .. } => (None, None),
        }
    }

    fn packetizer(&self, progress: &TrackProgress, max_payload: usize) -> Packetizer {
        let p = &self.params;
        Packetizer::new(p.ssrc, p.first_seq, max_payload, self.channels().0)
            .with_counts(progress.counts())
    }

    /// Sends one RTCP sender report for this track; returns its length.
    async fn report(&self, pk: &Packetizer, rtp_ts: u32, ntp: NtpTimestamp) -> io::Result<usize> {
        let mut report = Vec::new();
        rtp::sender_report(
            pk.ssrc(),
            ntp,
            rtp_ts,
            pk.counts(),
            "edgestream",
            self.channels().1,
            &mut report,
        );
        self.sink.send_rtcp(&report).await?;
        Ok(report.len())
    }
}

/// Sends a playing session's tracks: the video frames from `sub`, and
/// before each, the silent audio frames due by its capture time.
pub(super) async fn media_task(
    video: Option<Outlet>,
    audio: Option<Outlet>,
    sub: Subscription,
    progress: Arc<Progress>,
    max_payload: usize,
) -> io::Result<()> {
    let mut video = video.map(|o| (o.packetizer(&progress.video, max_payload), o));
    let mut audio = audio.map(|o| {
        let pk = o
            .packetizer(&progress.audio, max_payload)
            .with_payload_type(audio::PAYLOAD_TYPE);
        (SilentSender::new(pk, o.params.ts_offset), o)
    });
    let mut packets = Vec::new();
    let mut audio_bytes = Vec::new();
    let mut next_report: Option<Instant> = None;
    enum Event {
        Frame(Option<Arc<EncodedFrame>>),
        Report,
    }
    loop {
        let event = match next_report {
            Some(at) => {
                smol::future::or(async { Event::Frame(sub.recv().await) }, async {
                    Timer::at(at).await;
                    Event::Report
                })
                .await
            }
            None => Event::Frame(sub.recv().await),
        };
        match event {
            Event::Frame(None) => return Ok(()),
            Event::Frame(Some(frame)) => {
                if let Some((sender, out)) = &mut audio {
                    audio_bytes.clear();
                    if sender.until(frame.pts, &mut audio_bytes) > 0 {
                        out.sink
                            .send_packets(&audio_bytes, audio::UDP_PACKET_LEN)
                            .await?;
                        sub.meter().sent(audio_bytes.len());
                        progress.audio.record(sender.packetizer());
                    }
                }
                if let Some((pk, out)) = &mut video {
                    packets.clear();
                    let ts = rtp::rtp_timestamp(frame.pts, out.params.ts_offset);
                    pk.packetize(&frame, ts, &mut packets);
                    out.sink.send_frame(&frame, &packets).await?;
                    let bytes: usize = packets
                        .iter()
                        .map(|p| p.header().len() + p.payload(&frame).len())
                        .sum();
                    sub.meter().sent(bytes);
                    progress.video.record(pk);
                }
                progress.frames.fetch_add(1, Ordering::Relaxed);
                // The first report right after the first frame, so players
                // can sync to wall clock time (and the tracks to each other)
                // at once.
                next_report.get_or_insert_with(Instant::now);
            }
            Event::Report => {
                // One instant for both tracks' reports.
                let ntp = NtpTimestamp::from_system_time(SystemTime::now());
                let now_pts = clock::monotonic_now();
                if let Some((pk, out)) = &video {
                    let ts = rtp::rtp_timestamp(now_pts, out.params.ts_offset);
                    sub.meter().sent(out.report(pk, ts, ntp).await?);
                }
                if let Some((sender, out)) = &audio {
                    let ts = audio::rtp_timestamp(now_pts, out.params.ts_offset);
                    sub.meter()
                        .sent(out.report(sender.packetizer(), ts, ntp).await?);
                }
                let jitter = SR_INTERVAL.as_millis() as u64 / 2;
                next_report = Some(
                    Instant::now()
                        + SR_INTERVAL / 2
                        + Duration::from_millis(fastrand::u64(0..=jitter)),
                );
            }
        }
    }
}
