//! A raw RTSP client driven by hand, for malformed, stalled and flooding
//! requests no real player sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A minimal hand-driven RTSP client for malformed and stalled requests.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: &str) -> Self {
        Self::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// Connects from a given loopback source address (127.0.0.0/8 is all
    /// local on Linux), so tests can act as many clients.
    pub fn connect_from(addr: &str, source: std::net::IpAddr) -> std::io::Result<Self> {
        let target: std::net::SocketAddr = addr.parse().unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        s.bind(&std::net::SocketAddr::new(source, 0).into())?;
        s.connect(&target.into())?;
        Ok(Self::from_stream(s.into()))
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response (status line, headers, body by Content-Length),
    /// skipping interleaved data. `None` if the server closed first.
    pub fn response(&mut self) -> Option<(u16, String)> {
        loop {
            if self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let n = 4 + u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
                if self.buf.len() >= n {
                    self.buf.drain(..n);
                    continue;
                }
            } else if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                    self.buf.drain(..end + 4 + len);
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    return Some((status, format!("{head}\r\n\r\n{body}")));
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Fills `out` from what an earlier read took past the last response
    /// (interleaved media that came in the same read as it), then from the
    /// socket.
    pub fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let n = self.buf.len().min(out.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        self.stream.read_exact(&mut out[n..])
    }

    pub fn request(&mut self, text: &str) -> Option<(u16, String)> {
        self.send(text.as_bytes());
        self.response()
    }

    /// DESCRIBE and SETUP of `rtsp://ADDR/live` with RTP interleaved over
    /// TCP on channels 0-1; returns the session id.
    pub fn setup_tcp(&mut self, addr: &str) -> String {
        let url = format!("rtsp://{addr}/live");
        let (status, _) = self
            .request(&format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
            .unwrap();
        assert_eq!(status, 200);
        let (status, resp) = self
            .request(&format!(
                "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
            ))
            .unwrap();
        assert_eq!(status, 200);
        header(&resp, "Session")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    /// Sends the PLAY for `session` (set up by [`Self::setup_tcp`]), with
    /// `extra` header lines (each ending in CRLF), without waiting.
    pub fn send_play(&mut self, addr: &str, session: &str, extra: &str) {
        self.send(
            format!(
                "PLAY rtsp://{addr}/live RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n{extra}\r\n"
            )
            .as_bytes(),
        );
    }

    /// Whether the server has closed the connection (reads until EOF or
    /// the timeout).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut chunk = [0u8; 65536];
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
        false
    }
}

/// Connects, sets up and plays `rtsp://ADDR/live` over TCP by hand (PLAY
/// with `extra` header lines); returns the client, now receiving media.
pub fn raw_play(addr: &str, extra: &str) -> RawClient {
    let mut c = RawClient::connect(addr);
    let session = c.setup_tcp(addr);
    c.send_play(addr, &session, extra);
    let (status, _) = c.response().unwrap();
    assert_eq!(status, 200);
    c
}

/// The next RTP packet on interleaved channel 0 (RTCP and the rest skipped).
pub fn next_rtp(c: &mut RawClient) -> Option<Vec<u8>> {
    loop {
        let mut head = [0u8; 4];
        c.read_exact(&mut head).ok()?;
        assert_eq!(head[0], b'$', "interleaved data only after PLAY");
        let mut data = vec![0u8; u16::from_be_bytes([head[2], head[3]]) as usize];
        c.read_exact(&mut data).ok()?;
        if head[1] == 0 && data.len() > 13 {
            return Some(data);
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value in a response text.
pub fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads an HTTP/1.1 response to the end of the connection (the request
/// said `Connection: close`): its status, its head and its body.
pub fn read_http_response(s: &mut impl std::io::Read) -> (u16, String, Vec<u8>) {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let end = find(&all, b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8_lossy(&all[..end]).to_string();
    let status = head[9..12].parse().expect("a status code");
    (status, head, all[end + 4..].to_vec())
}
