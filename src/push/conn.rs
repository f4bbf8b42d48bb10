//! One open push connection: the socket, TLS if any, and the publisher,
//! with writes bounded by [`WRITE_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use smol::Async;

use super::publisher::Publisher;
use super::tls::Tls;
use super::{PushError, READ_SIZE, WRITE_TIMEOUT, timeout};
use crate::fanout::Meter;
use crate::rtmp::Event;

/// Reads what the server sends and passes it on; the channel closes at the
/// end of the stream (bounded: the reader waits when the channel is full).
pub(super) async fn read_loop(
    stream: Arc<Async<TcpStream>>,
    tx: smol::channel::Sender<io::Result<Vec<u8>>>,
) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let r = stream.read_with(|s| (&*s).read(&mut buf)).await;
        let item = match r {
            Ok(0) => return,
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// One open connection.
pub(super) struct Conn {
    pub(super) stream: Arc<Async<TcpStream>>,
    pub(super) rx: smol::channel::Receiver<io::Result<Vec<u8>>>,
    pub(super) publisher: Box<dyn Publisher>,
    /// RTMPS: TLS between the publisher and the socket.
    pub(super) tls: Option<Tls>,
    /// Counts the bytes written (TLS records included).
    pub(super) meter: Meter,
}

impl Conn {
    /// Sends bytes of the publisher's, through TLS if there is TLS.
    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<(), PushError> {
        match &mut self.tls {
            None => self.write_raw(bytes, what).await,
            Some(tls) => {
                tls.write_plain(bytes);
                self.send_records(what).await
            }
        }
    }

    /// Sends the TLS records that are ready (handshake, data, alerts).
    pub(super) async fn send_records(&mut self, what: &'static str) -> Result<(), PushError> {
        let mut records = Vec::new();
        if let Some(tls) = &mut self.tls {
            tls.take_records(&mut records);
        }
        self.write_raw(&records, what).await
    }

    /// Writes everything to the socket; fails if a write makes no progress
    /// for [`WRITE_TIMEOUT`].
    async fn write_raw(&self, mut bytes: &[u8], what: &'static str) -> Result<(), PushError> {
        while !bytes.is_empty() {
            let n = timeout(
                WRITE_TIMEOUT,
                self.stream.write_with(|s| (&*s).write(bytes)),
            )
            .await
            .ok_or(PushError::Timeout {
                what,
                limit: WRITE_TIMEOUT,
            })?
            .map_err(|error| PushError::Io { what, error })?;
            if n == 0 {
                return Err(PushError::Closed { during: what });
            }
            self.meter.sent(n);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Writes what the publisher has to send.
    pub(super) async fn flush(&mut self, what: &'static str) -> Result<(), PushError> {
        let bytes = self.publisher.take_output();
        self.write(&bytes, what).await
    }

    /// Handles bytes from the server (or its end).
    pub(super) async fn handle_input(
        &mut self,
        input: Result<io::Result<Vec<u8>>, smol::channel::RecvError>,
        during: &'static str,
        name: &str,
    ) -> Result<(), PushError> {
        let bytes = match input {
            Err(_) => return Err(PushError::Closed { during }),
            Ok(Err(error)) => {
                return Err(PushError::Io {
                    what: "reading",
                    error,
                });
            }
            Ok(Ok(bytes)) => bytes,
        };
        let bytes = match &mut self.tls {
            None => bytes,
            Some(tls) => {
                let mut plain = Vec::new();
                tls.read_records(&bytes, &mut plain)
                    .map_err(PushError::Tls)?;
                // Handshake answers, and what waited for the handshake.
                self.send_records(during).await?;
                plain
            }
        };
        self.publisher
            .handle_input(&bytes)
            .map_err(PushError::Rtmp)?;
        while let Some(e) = self.publisher.poll_event() {
            match e {
                Event::Connected => log::debug!("push {name}: RTMP connect accepted"),
                Event::PublishStarted => log::debug!("push {name}: NetStream.Publish.Start"),
                Event::Status { code, description } => {
                    log::info!("push {name}: server status {code} {description}")
                }
            }
        }
        Ok(())
    }

    /// Until the publisher may send media (RTMP: handshake, connect and
    /// publish, until `NetStream.Publish.Start`).
    pub(super) async fn setup(&mut self, name: &str) -> Result<(), PushError> {
        loop {
            let during = self.publisher.waiting_for();
            self.flush(during).await?;
            if self.publisher.is_publishing() {
                return Ok(());
            }
            let input = self.rx.recv().await;
            self.handle_input(input, during, name).await?;
        }
    }
}
