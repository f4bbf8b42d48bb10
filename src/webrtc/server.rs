//! The WebRTC shell: one UDP port for every peer (one socket per local
//! address on it, so each datagram's destination is known, which ICE
//! needs), a TCP port for ICE-TCP (RFC 6544, passive: the browser
//! connects; packets framed as RFC 4571 says, [`super::framing`]), a timer
//! task, and one fan-out sink per connected peer. All protocol work is in
//! [`super::peer`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};
use str0m::config::DtlsCert;
use str0m::net::Protocol;

use super::WhepError;
use super::framing::{Deframer, frame};
use super::peer::{Effect, Peer};
use crate::fanout::{Fanout, SinkKind};

/// Frames queued per peer before it drops to the next keyframe.
const QUEUE_FRAMES: usize = 30;

/// Packets queued on an ICE-TCP connection before it counts as congested
/// (a keyframe's worth at a few Mbit/s).
const TCP_QUEUE_PACKETS: usize = 256;

/// How long an ICE-TCP connection may take to send its first STUN check
/// (a browser sends it at once): a silent one would hold a slot.
const TCP_FIRST_PACKET: Duration = Duration::from_secs(5);

/// The open ICE-TCP connections by (local, remote) address: their send
/// queues of framed packets.
type TcpConns = HashMap<(SocketAddr, SocketAddr), smol::channel::Sender<Vec<u8>>>;

/// What the WebRTC side is started with.
#[derive(Debug, Clone)]
pub struct WebrtcOptions {
    /// `webrtc-udp`.
    pub listen: SocketAddr,
    /// `webrtc-tcp`: ICE-TCP's port, or None.
    pub tcp: Option<SocketAddr>,
    /// `webrtc-additional-hosts`: offered as host candidates on the port.
    pub additional_hosts: Vec<IpAddr>,
    /// At most this many peers (`max-viewers`).
    pub max_peers: usize,
}

/// Counters for the status API and tests.
#[derive(Debug, Default)]
pub struct WebrtcStats {
    /// Peers with a session now (connected or connecting).
    pub peers: AtomicUsize,
    pub frames_sent: AtomicU64,
    pub keyframe_requests: AtomicU64,
    /// Datagrams the kernel would not take (socket buffer full).
    pub send_blocked: AtomicU64,
}

struct Slot {
    peer: Peer,
    deadline: Instant,
    /// Notified when the slot goes (the peer's frame task ends).
    gone: Arc<event_listener::Event>,
}

/// The WebRTC service: sessions by id and the sockets they share.
pub struct Webrtc {
    /// Each socket with its local address, read once when bound (a
    /// transmit picks its socket by address on every packet).
    sockets: Vec<(SocketAddr, Async<UdpSocket>)>,
    candidates: Vec<SocketAddr>,
    /// ICE-TCP: the listener, the addresses offered on it, and the open
    /// connections by (local, remote) address with their send queues.
    tcp: Option<Async<TcpListener>>,
    tcp_candidates: Vec<SocketAddr>,
    tcp_conns: Mutex<TcpConns>,
    /// One DTLS certificate for every peer, made at bind (an ECDSA key
    /// pair per peer would cost a join on a Pi Zero for nothing: the
    /// fingerprint only has to match within a session).
    cert: DtlsCert,
    peers: Mutex<HashMap<u64, Slot>>,
    timers: event_listener::Event,
    fanout: Arc<Fanout>,
    max_peers: usize,
    stats: Arc<WebrtcStats>,
}

impl Webrtc {
    /// Binds the port: on each interface address for a wildcard `listen`
    /// (the port the first one got for port 0), else on `listen`.
    pub fn bind(opts: &WebrtcOptions, fanout: Arc<Fanout>) -> io::Result<Arc<Self>> {
        let mut ips = if opts.listen.ip().is_unspecified() {
            let mut ips = crate::netif::interface_addrs();
            ips.retain(|ip| ip.is_ipv4() == opts.listen.is_ipv4());
            ips
        } else {
            vec![opts.listen.ip()]
        };
        if ips.is_empty() {
            ips.push(opts.listen.ip());
        }
        let mut port = opts.listen.port();
        let mut sockets = Vec::new();
        for ip in ips {
            let s = Async::<UdpSocket>::bind(SocketAddr::new(ip, port))?;
            let local = s.get_ref().local_addr()?;
            port = local.port();
            let _ = socket2::SockRef::from(s.get_ref()).set_send_buffer_size(1 << 20);
            sockets.push((local, s));
        }
        let mut candidates: Vec<SocketAddr> = sockets.iter().map(|&(a, _)| a).collect();
        // Loopback last: browsers ignore it unless told otherwise.
        candidates.sort_by_key(|a| a.ip().is_loopback());
        candidates.extend(
            opts.additional_hosts
                .iter()
                .map(|&ip| SocketAddr::new(ip, port)),
        );
        let (tcp, tcp_candidates) = match opts.tcp {
            Some(addr) => {
                let l = Async::<TcpListener>::bind(addr)?;
                let port = l.get_ref().local_addr()?.port();
                // The UDP side's addresses (the additional hosts among
                // them) for a wildcard, else the one bound and those hosts.
                let c: Vec<SocketAddr> = if addr.ip().is_unspecified() {
                    candidates
                        .iter()
                        .map(|a| SocketAddr::new(a.ip(), port))
                        .collect()
                } else {
                    std::iter::once(addr.ip())
                        .chain(opts.additional_hosts.iter().copied())
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect()
                };
                (Some(l), c)
            }
            None => (None, Vec::new()),
        };
        let mut serial = [0; 16];
        crate::sys::fill_random(&mut serial)?;
        let cert = super::crypto::certificate(serial).map_err(io::Error::other)?;
        Ok(Arc::new(Self {
            sockets,
            candidates,
            tcp,
            tcp_candidates,
            tcp_conns: Mutex::new(HashMap::new()),
            cert,
            peers: Mutex::new(HashMap::new()),
            timers: event_listener::Event::new(),
            fanout,
            max_peers: opts.max_peers,
            stats: Arc::default(),
        }))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.candidates.first().map_or(0, |a| a.port())
    }

    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// ICE-TCP's addresses (empty when `webrtc-tcp` is off).
    pub fn tcp_candidates(&self) -> &[SocketAddr] {
        &self.tcp_candidates
    }

    pub fn stats(&self) -> Arc<WebrtcStats> {
        self.stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers a WHEP offer: the session id and the SDP answer.
    pub fn offer(&self, sdp: &str) -> Result<(u64, String), WhepError> {
        let now = Instant::now();
        let (peer, answer) =
            Peer::answer(sdp, &self.candidates, &self.tcp_candidates, &self.cert, now)?;
        let mut peers = self.lock();
        if peers.len() >= self.max_peers {
            return Err(WhepError::Full(self.max_peers));
        }
        let id = loop {
            let id = fastrand::u64(1..);
            if !peers.contains_key(&id) {
                break id;
            }
        };
        peers.insert(
            id,
            Slot {
                peer,
                deadline: now,
                gone: Arc::default(),
            },
        );
        self.stats.peers.store(peers.len(), Ordering::Relaxed);
        drop(peers);
        self.timers.notify(1);
        Ok((id, answer))
    }

    /// Ends a session (WHEP DELETE); `false` if there is none by that id.
    pub fn delete(self: &Arc<Self>, id: u64) -> bool {
        let mut effects = Vec::new();
        let found = match self.lock().get_mut(&id) {
            Some(slot) => {
                slot.peer.close();
                slot.peer.poll_into(Instant::now(), &mut effects);
                true
            }
            None => false,
        };
        if found {
            self.apply(id, effects);
            self.remove(id);
        }
        found
    }

    fn remove(&self, id: u64) {
        let mut peers = self.lock();
        if let Some(slot) = peers.remove(&id) {
            slot.gone.notify(usize::MAX);
            log::info!(
                "webrtc: session {id:016x} ended after {} frames",
                slot.peer.stats.frames_sent
            );
        }
        self.stats.peers.store(peers.len(), Ordering::Relaxed);
    }

    /// Runs the sockets and the timers until the future is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = Vec::new();
        for i in 0..self.sockets.len() {
            let me = self.clone();
            tasks.push(smol::spawn(async move { me.receive(i).await }));
        }
        if self.tcp.is_some() {
            let me = self.clone();
            tasks.push(smol::spawn(async move { me.accept_tcp().await }));
        }
        self.timers().await;
        drop(tasks);
    }

    async fn receive(self: Arc<Self>, i: usize) {
        let (local, socket) = &self.sockets[i];
        let local = *local;
        let mut buf = vec![0u8; 2048];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    log::debug!("webrtc: receive on {local}: {e}");
                    Timer::after(Duration::from_millis(10)).await;
                    continue;
                }
            };
            self.deliver(Protocol::Udp, from, local, &buf[..n]);
        }
    }

    /// Hands a packet to the peer it belongs to; false if none takes it.
    fn deliver(
        self: &Arc<Self>,
        proto: Protocol,
        from: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) -> bool {
        let now = Instant::now();
        let mut effects = Vec::new();
        let mut owner = None;
        for (&id, slot) in self.lock().iter_mut() {
            if slot.peer.accepts(now, proto, from, local, data) {
                slot.peer.receive(now, proto, from, local, data);
                slot.deadline = slot.peer.poll_into(now, &mut effects);
                owner = Some(id);
                break;
            }
        }
        let Some(id) = owner else { return false };
        self.apply(id, effects);
        self.timers.notify(1);
        true
    }

    /// Accepts ICE-TCP connections, at most two per possible peer.
    async fn accept_tcp(self: Arc<Self>) {
        let Some(listener) = &self.tcp else { return };
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    log::debug!("webrtc: tcp accept: {e}");
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if self.tcp_lock().len() >= 2 * self.max_peers + 2 {
                continue;
            }
            let me = self.clone();
            smol::spawn(async move { me.tcp_conn(stream).await }).detach();
        }
    }

    fn tcp_lock(&self) -> MutexGuard<'_, TcpConns> {
        self.tcp_conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One ICE-TCP connection: framed packets in to their peer, and out
    /// from its queue. A connection whose first packet no peer takes (not
    /// a STUN check for a session), or that sends none within
    /// [`TCP_FIRST_PACKET`], is closed.
    async fn tcp_conn(self: Arc<Self>, stream: Async<TcpStream>) {
        let (Ok(local), Ok(remote)) = (stream.get_ref().local_addr(), stream.get_ref().peer_addr())
        else {
            return;
        };
        let _ = stream.get_ref().set_nodelay(true);
        let (tx, rx) = smol::channel::bounded::<Vec<u8>>(TCP_QUEUE_PACKETS);
        self.tcp_lock().insert((local, remote), tx);
        let stream = Arc::new(stream);
        let writer = {
            let stream = stream.clone();
            smol::spawn(async move {
                while let Ok(bytes) = rx.recv().await {
                    if (&*stream).write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            })
        };
        let mut deframer = Deframer::default();
        let mut buf = vec![0u8; 4096];
        let mut owned = false;
        let opened = Instant::now();
        let mut reader: &Async<TcpStream> = &stream;
        'read: loop {
            let read = reader.read(&mut buf);
            let n = if owned {
                read.await
            } else {
                smol::future::or(read, async {
                    Timer::at(opened + TCP_FIRST_PACKET).await;
                    Err(io::ErrorKind::TimedOut.into())
                })
                .await
            };
            let n = match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            deframer.push(&buf[..n]);
            while let Some(packet) = deframer.next_packet() {
                let taken = self.deliver(Protocol::Tcp, remote, local, &packet);
                if !taken && !owned {
                    log::debug!("webrtc: tcp {remote}: not a session's; closed");
                    break 'read;
                }
                owned |= taken;
            }
        }
        self.tcp_lock().remove(&(local, remote));
        drop(writer);
    }

    async fn timers(self: &Arc<Self>) {
        loop {
            let listener = self.timers.listen();
            let now = Instant::now();
            let mut due = Vec::new();
            let mut next = now + Duration::from_secs(1);
            for (&id, slot) in self.lock().iter_mut() {
                if slot.deadline <= now {
                    let mut effects = Vec::new();
                    slot.peer.timeout(now);
                    slot.deadline = slot.peer.poll_into(now, &mut effects);
                    if slot.peer.is_closed() && !effects.contains(&Effect::Closed) {
                        effects.push(Effect::Closed);
                    }
                    due.push((id, effects));
                }
                next = next.min(slot.deadline);
            }
            for (id, effects) in due {
                self.apply(id, effects);
            }
            smol::future::or(listener, async {
                Timer::at(next).await;
            })
            .await;
        }
    }

    /// Carries out what a peer asked for (outside the lock).
    fn apply(self: &Arc<Self>, id: u64, effects: Vec<Effect>) {
        let mut blocked = false;
        for e in effects {
            match e {
                Effect::Transmit {
                    proto: Protocol::Tcp,
                    from,
                    to,
                    data,
                } => {
                    let queue = self.tcp_lock().get(&(from, to)).cloned();
                    let (Some(queue), Some(bytes)) = (queue, frame(&data)) else {
                        continue;
                    };
                    let n = bytes.len() as u64;
                    match queue.try_send(bytes) {
                        Ok(()) => self.fanout.totals().add_bytes(SinkKind::WebRtc, n),
                        Err(smol::channel::TrySendError::Full(_)) => {
                            self.stats.send_blocked.fetch_add(1, Ordering::Relaxed);
                            blocked = true;
                        }
                        Err(smol::channel::TrySendError::Closed(_)) => {}
                    }
                }
                Effect::Transmit { from, to, data, .. } => {
                    let socket = self
                        .sockets
                        .iter()
                        .find(|(a, _)| *a == from)
                        .or(self.sockets.first());
                    if let Some((_, s)) = socket {
                        match s.get_ref().send_to(&data, to) {
                            Ok(n) => self.fanout.totals().add_bytes(SinkKind::WebRtc, n as u64),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                self.stats.send_blocked.fetch_add(1, Ordering::Relaxed);
                                blocked = true;
                            }
                            Err(e) => log::debug!("webrtc: send to {to}: {e}"),
                        }
                    }
                }
                Effect::Connected => {
                    log::info!("webrtc: session {id:016x} connected");
                    let me = self.clone();
                    smol::spawn(async move { me.frames(id).await }).detach();
                }
                Effect::KeyframeWanted => {
                    self.stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    self.fanout.keyframe_request().request();
                }
                Effect::Closed => self.remove(id),
            }
        }
        if blocked {
            let first = self
                .lock()
                .get_mut(&id)
                .is_some_and(|slot| slot.peer.congested());
            if first {
                self.fanout.keyframe_request().request();
            }
        }
    }

    /// A connected peer's sink: subscribing starts it at a keyframe (an
    /// IDR forced for it within the budget), then every frame is written.
    async fn frames(self: Arc<Self>, id: u64) {
        let Some(gone) = self.lock().get(&id).map(|s| s.gone.clone()) else {
            return;
        };
        let sub = self.fanout.subscribe(SinkKind::WebRtc, QUEUE_FRAMES);
        loop {
            let listener = gone.listen();
            if !self.lock().contains_key(&id) {
                break;
            }
            let frame = smol::future::or(sub.recv(), async {
                listener.await;
                None
            })
            .await;
            let Some(frame) = frame else {
                break;
            };
            let now = Instant::now();
            let age = crate::clock::monotonic_now().saturating_sub(frame.pts);
            let mut effects = Vec::new();
            match self.lock().get_mut(&id) {
                Some(slot) => {
                    slot.peer.send_frame(&frame, age, now);
                    slot.deadline = slot.peer.poll_into(now, &mut effects);
                }
                None => break,
            }
            self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            self.apply(id, effects);
            self.timers.notify(1);
        }
    }
}

impl crate::http::whep::Sessions for Arc<Webrtc> {
    fn offer(&self, sdp: &str) -> Result<(u64, String), WhepError> {
        Webrtc::offer(self, sdp)
    }

    fn delete(&self, id: u64) -> bool {
        Webrtc::delete(self, id)
    }
}
