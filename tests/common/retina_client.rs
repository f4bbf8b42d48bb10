//! retina (the Rust RTSP client) as a viewer, on a tokio runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a retina viewer saw.
#[derive(Debug, Default)]
pub struct Viewed {
    pub frames: usize,
    pub first_is_key: bool,
    pub sender_reports: usize,
    /// The longest wait between two frames.
    pub max_gap: Duration,
    /// When each frame arrived and whether it was a keyframe.
    pub frame_times: Vec<(Instant, bool)>,
}

/// Plays `url` with retina over `transport` ("tcp" or "udp") for `secs`.
pub async fn retina_view(url: &str, transport: &str, secs: f64) -> Result<Viewed, String> {
    retina_watch(url, transport, secs, None, None).await
}

/// Like [`retina_view`], with credentials (user, password).
pub async fn retina_view_as(
    url: &str,
    transport: &str,
    secs: f64,
    creds: Option<(&str, &str)>,
) -> Result<Viewed, String> {
    retina_watch(url, transport, secs, creds, None).await
}

/// Like [`retina_view`], but also ends (successfully) once `done` is set.
pub async fn retina_view_until(
    url: &str,
    transport: &str,
    max_secs: f64,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Viewed, String> {
    retina_watch(url, transport, max_secs, None, Some(done)).await
}

/// DESCRIBE, SETUP and PLAY with retina; the demuxed stream of items.
async fn retina_play(
    url: &str,
    transport: &str,
    creds: Option<(&str, &str)>,
) -> Result<retina::client::Demuxed, String> {
    use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions};

    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let options = SessionOptions::default().creds(creds.map(|(u, p)| Credentials {
        username: u.into(),
        password: p.into(),
    }));
    let mut session = Session::describe(url, options)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let transport = transport.parse().map_err(|e| format!("{e}"))?;
    session
        .setup(0, SetupOptions::default().transport(transport))
        .await
        .map_err(|e| format!("SETUP: {e}"))?;
    session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| e.to_string())
}

/// Plays for up to `secs` (or until `done` is set) and records what
/// arrived. A stall counts toward `max_gap` while it lasts, also at the end.
async fn retina_watch(
    url: &str,
    transport: &str,
    secs: f64,
    creds: Option<(&str, &str)>,
    done: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> Result<Viewed, String> {
    use futures::StreamExt;
    use retina::codec::CodecItem;
    use std::sync::atomic::Ordering;

    let playing = retina_play(url, transport, creds).await?;
    tokio::pin!(playing);
    let mut v = Viewed::default();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut last = Instant::now();
    while Instant::now() < end && !done.as_ref().is_some_and(|d| d.load(Ordering::Relaxed)) {
        let wait = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let item = match tokio::time::timeout(wait, playing.next()).await {
            Err(_) => {
                if v.frames > 0 {
                    v.max_gap = v.max_gap.max(last.elapsed());
                }
                continue;
            }
            Ok(None) => return Err(format!("stream ended after {} frames", v.frames)),
            Ok(Some(Err(e))) => return Err(format!("after {} frames: {e}", v.frames)),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                if v.frames == 0 {
                    v.first_is_key = f.is_random_access_point();
                } else {
                    v.max_gap = v.max_gap.max(last.elapsed());
                }
                last = Instant::now();
                v.frame_times.push((last, f.is_random_access_point()));
                v.frames += 1;
            }
            CodecItem::Rtcp(r)
                if r.pkts()
                    .any(|p| matches!(p.as_sender_report(), Ok(Some(_)))) =>
            {
                v.sender_reports += 1;
            }
            _ => {}
        }
    }
    Ok(v)
}

/// What a retina viewer of every track saw.
#[derive(Debug, Default)]
pub struct ViewedTracks {
    pub encodings: Vec<String>,
    pub video_frames: usize,
    pub audio_frames: usize,
    /// Audio frames whose AAC samples were not 1024.
    pub odd_audio_frames: usize,
    /// The largest distance (s) between a video frame's time and the
    /// newest audio frame's time before it, on retina's shared timeline
    /// (each track's NPT from RTP-Info `rtptime`).
    pub worst_av_offset: f64,
    /// Video and audio time (s) of the last frames.
    pub last: (f64, f64),
}

/// Sets up every track of `url` over `transport` and plays for `secs`.
pub async fn retina_view_tracks(
    url: &str,
    transport: &str,
    secs: f64,
) -> Result<ViewedTracks, String> {
    use futures::StreamExt;
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
    use retina::codec::CodecItem;

    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut session = Session::describe(url, SessionOptions::default())
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let transport: retina::client::Transport = transport.parse().map_err(|e| format!("{e}"))?;
    let mut v = ViewedTracks {
        encodings: session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect(),
        ..ViewedTracks::default()
    };
    for i in 0..session.streams().len() {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .map_err(|e| format!("SETUP {i}: {e}"))?;
    }
    let playing = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?
        .demuxed()
        .map_err(|e| e.to_string())?;
    tokio::pin!(playing);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut audio_at: Option<f64> = None;
    while Instant::now() < end {
        let wait = end.saturating_duration_since(Instant::now());
        let item = match tokio::time::timeout(wait, playing.next()).await {
            Err(_) => break,
            Ok(None) => return Err("stream ended".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            CodecItem::VideoFrame(f) => {
                let t = f.timestamp().elapsed_secs();
                if let Some(a) = audio_at {
                    v.worst_av_offset = v.worst_av_offset.max((t - a).abs());
                }
                v.last.0 = t;
                v.video_frames += 1;
            }
            CodecItem::AudioFrame(f) => {
                let t = f.timestamp().elapsed_secs();
                audio_at = Some(t);
                v.last.1 = t;
                v.audio_frames += 1;
                if f.frame_length().get() != 1024 {
                    v.odd_audio_frames += 1;
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

/// Runs a future on a fresh tokio runtime (retina needs tokio).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
