//! Sending one session's media: the RTP packetizer's output written with
//! vectored I/O around the shared frame bytes, over the RTSP connection
//! (interleaved) or UDP, plus RTCP sender reports. Used by the server.

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use smol::{Async, Timer};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::session::{MediaTransport, PlayParams};
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

    async fn send_rtcp(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Tcp(out) => out.write_all(bytes).await,
            Sink::Udp { pair, rtcp, .. } => pair.rtcp.send_to(bytes, *rtcp).await.map(|_| ()),
        }
    }
}

/// Where a media task stopped: lets a later PLAY continue the sequence.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) next_seq: AtomicU32,
    pub(super) packets: AtomicU32,
    pub(super) octets: AtomicU32,
    pub(super) frames: AtomicU64,
}

pub(super) async fn media_task(
    params: PlayParams,
    sink: Sink,
    sub: Subscription,
    progress: Arc<Progress>,
    max_payload: usize,
) -> io::Result<()> {
    let interleaved = match params.transport {
        MediaTransport::Tcp { rtp_channel, .. } => Some(rtp_channel),
        MediaTransport::Udp { .. } => None,
    };
    let rtcp_channel = match params.transport {
        MediaTransport::Tcp { rtcp_channel, .. } => Some(rtcp_channel),
        MediaTransport::Udp { .. } => None,
    };
    let mut pk = Packetizer::new(params.ssrc, params.first_seq, max_payload, interleaved)
        .with_counts((
            progress.packets.load(Ordering::Relaxed),
            progress.octets.load(Ordering::Relaxed),
        ));
    let mut packets = Vec::new();
    let mut report = Vec::new();
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
                packets.clear();
                pk.packetize(
                    &frame,
                    rtp::rtp_timestamp(frame.pts, params.ts_offset),
                    &mut packets,
                );
                sink.send_frame(&frame, &packets).await?;
                let bytes: usize = packets
                    .iter()
                    .map(|p| p.header().len() + p.payload(&frame).len())
                    .sum();
                sub.meter().sent(bytes);
                progress
                    .next_seq
                    .store(u32::from(pk.next_seq()), Ordering::Relaxed);
                let (p, o) = pk.counts();
                progress.packets.store(p, Ordering::Relaxed);
                progress.octets.store(o, Ordering::Relaxed);
                progress.frames.fetch_add(1, Ordering::Relaxed);
                // The first report right after the first frame, so players
                // can sync to wall clock time at once.
                next_report.get_or_insert_with(Instant::now);
            }
            Event::Report => {
                report.clear();
                let now_pts = clock::monotonic_now();
                rtp::sender_report(
                    pk.ssrc(),
                    NtpTimestamp::from_system_time(SystemTime::now()),
                    rtp::rtp_timestamp(now_pts, params.ts_offset),
                    pk.counts(),
                    "edgestream",
                    rtcp_channel,
                    &mut report,
                );
                sink.send_rtcp(&report).await?;
                sub.meter().sent(report.len());
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
