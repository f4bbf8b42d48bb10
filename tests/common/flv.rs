//! A raw FLV receiver (the crtmpserver inboundLiveFlv role) and the checks
//! every FLV recording must pass.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A raw FLV receiver: accepts connections on 127.0.0.1:`port` one after
/// another and keeps what each sent (like crtmpserver's inboundLiveFlv,
/// minus the server).
pub struct FlvReceiver {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// One entry per connection, filled as bytes arrive.
    pub recordings: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FlvReceiver {
    pub fn start(port: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let recordings = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let recordings = recordings.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut conn = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    let index = {
                        let mut r = recordings.lock().unwrap();
                        r.push(Vec::new());
                        r.len() - 1
                    };
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        match conn.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => recordings.lock().unwrap()[index].extend_from_slice(&buf[..n]),
                            Err(e)
                                if e.kind() == std::io::ErrorKind::WouldBlock
                                    || e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                    // Dropping the connection (and, when stopping, the
                    // listener) is what a killed receiver looks like.
                }
            })
        };
        Self {
            port,
            stop,
            recordings,
            thread: Some(thread),
        }
    }

    pub fn recordings(&self) -> Vec<Vec<u8>> {
        self.recordings.lock().unwrap().clone()
    }

    /// Closes the connection and the listener at once.
    pub fn kill(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.recordings()
    }
}

impl Drop for FlvReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a recording held, after the checks every recording must pass.
#[derive(Debug)]
pub struct Recording {
    /// Video frames (not counting sequence headers).
    pub frames: usize,
    pub keyframes: usize,
    pub stream_name: Option<String>,
    pub has_metadata: bool,
    pub last_timestamp: u32,
}

/// Parses an FLV recording tag by tag and checks it: the PreviousTagSize
/// chain, metadata (if any) first, an AVC sequence header before the first
/// frame, a keyframe first, NAL lengths that add up, timestamps that never
/// go back. A last tag cut short (a killed receiver) is allowed.
pub fn check_flv(what: &str, bytes: &[u8]) -> Recording {
    use edgestream::flv::read;
    let file = read::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(file.has_video, "{what}: the header has no video flag");
    let mut rec = Recording {
        frames: 0,
        keyframes: 0,
        stream_name: None,
        has_metadata: false,
        last_timestamp: 0,
    };
    let mut seen_sequence_header = false;
    let mut last = 0;
    for (i, tag) in file.tags.iter().enumerate() {
        match tag.tag_type {
            edgestream::flv::TAG_SCRIPT => {
                let values = edgestream::rtmp::amf0::decode_all(&tag.body)
                    .unwrap_or_else(|e| panic!("{what}: script tag {i}: {e}"));
                if values.first().and_then(|v| v.as_str()) == Some("onMetaData") {
                    assert!(
                        rec.frames == 0 && !seen_sequence_header,
                        "{what}: onMetaData after the video started"
                    );
                    rec.has_metadata = true;
                    rec.stream_name = values
                        .get(1)
                        .and_then(|m| m.get_str("streamName"))
                        .map(str::to_string);
                }
            }
            edgestream::flv::TAG_VIDEO => {
                let v = read::Video::parse(&tag.body)
                    .unwrap_or_else(|| panic!("{what}: video tag {i} too short"));
                assert_eq!(v.codec, 7, "{what}: tag {i} is not AVC");
                assert!(
                    tag.timestamp >= last,
                    "{what}: tag {i} goes back in time: {} after {last}",
                    tag.timestamp
                );
                last = tag.timestamp;
                match v.packet_type {
                    0 => {
                        assert!(
                            read::decoder_configuration(v.data).is_some(),
                            "{what}: tag {i}: bad AVCDecoderConfigurationRecord"
                        );
                        seen_sequence_header = true;
                    }
                    1 => {
                        assert!(
                            seen_sequence_header,
                            "{what}: frame tag {i} before any sequence header"
                        );
                        if rec.frames == 0 {
                            assert!(v.keyframe, "{what}: the first frame is not a keyframe");
                        }
                        let nals = v.nals().unwrap_or_else(|| {
                            panic!("{what}: tag {i}: NAL lengths do not add up")
                        });
                        assert!(!nals.is_empty(), "{what}: tag {i} has no NAL unit");
                        rec.frames += 1;
                        rec.keyframes += usize::from(v.keyframe);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    rec.last_timestamp = last;
    rec
}

/// Writes `bytes` to `dir/name`; returns ffmpeg's decode errors and the
/// number of frames ffprobe decodes from it.
pub fn ffmpeg_check(dir: &std::path::Path, name: &str, bytes: &[u8]) -> (String, usize) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    (
        super::ffmpeg::decode_errors(&path),
        super::ffmpeg::probe_frames(&path).len(),
    )
}
