//! Wiring: builds the source, pipeline, fan-out and servers from a
//! [`Config`], runs them until a signal, the frame limit or the end of the
//! source, and reports why it stopped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smol::stream::StreamExt;

use crate::config::{Config, SourceSpec};
use crate::fanout::{Fanout, KeyframeRequest};
use crate::health::{Health, SourceState};
use crate::media::Fraction;
use crate::pipeline::{EncodeOptions, Ended, Handles, Opener, Pipeline};
use crate::rtsp::{RtspServer, ServerOptions};
use crate::source::testsrc::TestPattern;
use crate::source::v4l2::V4l2Source;
use crate::source::v4l2::negotiate::Request;
use crate::source::y4m::Y4mFile;
use crate::source::{FrameSource, SourceFormat};
use crate::stats::{PipelineStats, StatsLine};

/// How often the stats line is logged.
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Opens the configured source.
pub fn open_source(config: &Config) -> Result<Box<dyn FrameSource>, String> {
    let fps = Fraction::new(config.fps, 1);
    match &config.source {
        SourceSpec::TestPattern => TestPattern::new(config.width, config.height, fps, config.pace)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(|e| e.to_string()),
        SourceSpec::Y4m(path) => Y4mFile::open(path, config.pace)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(|e| e.to_string()),
        SourceSpec::Device(path) => camera_opener(config, path)().map_err(|e| e.message),
    }
}

/// Opens the camera `path` for the configured size and frame rate; called
/// again by the pipeline after every failure.
pub fn camera_opener(config: &Config, path: &std::path::Path) -> Opener {
    let req = Request {
        width: config.width,
        height: config.height,
        fps: config.fps,
        format: config.camera_format,
    };
    let path = path.to_path_buf();
    Box::new(move || V4l2Source::open(&path, req).map(|s| Box::new(s) as Box<dyn FrameSource>))
}

/// The URLs a viewer can open for a server bound to `addr`.
pub fn viewer_urls(addr: SocketAddr, path: &str) -> Vec<String> {
    let port = addr.port();
    let fmt = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => format!("rtsp://{v4}:{port}{path}"),
        IpAddr::V6(v6) => format!("rtsp://[{v6}]:{port}{path}"),
    };
    if !addr.ip().is_unspecified() {
        return vec![fmt(addr.ip())];
    }
    let mut ips = crate::netif::interface_addrs();
    ips.retain(|ip| ip.is_ipv4() || addr.is_ipv6());
    // LAN addresses first: those are what a viewer on another machine opens.
    ips.sort_by_key(|ip| (ip.is_loopback(), ip.is_ipv6()));
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips.into_iter().map(fmt).collect()
}

/// What ended the run.
enum End {
    Signal(i32),
    Pipeline(Result<Ended, String>),
}

/// Runs everything. Returns when stopped; the error is a runtime failure.
pub fn run(config: Config) -> Result<(), String> {
    // A camera that is not there (yet) is not fatal: the pipeline keeps
    // trying. Other sources must open now.
    let (source, camera) = match &config.source {
        SourceSpec::Device(path) => {
            let mut open = camera_opener(&config, path);
            match open() {
                Ok(s) => (Some(s), Some((open, path.clone()))),
                Err(e) if e.recoverable => {
                    log::warn!("{e}; waiting for it");
                    (None, Some((open, path.clone())))
                }
                Err(e) => return Err(e.message),
            }
        }
        _ => (Some(open_source(&config)?), None),
    };
    let fmt = match &source {
        Some(s) => s.format().clone(),
        None => SourceFormat {
            width: config.width,
            height: config.height,
            fps: Fraction::new(config.fps, 1),
            pixel_format: crate::media::PixelFormat::I420,
            description: format!("camera {} (not there yet)", config.source),
        },
    };
    if !matches!(config.source, SourceSpec::TestPattern)
        && (fmt.width, fmt.height, fmt.fps)
            != (config.width, config.height, Fraction::new(config.fps, 1))
    {
        log::info!(
            "source: {} delivers {}x{} at {} fps; using that",
            fmt.description,
            fmt.width,
            fmt.height,
            fmt.fps
        );
    }
    for url in &config.push {
        log::warn!("push: {url}: pushing is not implemented yet; ignored");
    }
    let keyframes = Arc::new(KeyframeRequest::default());
    let fanout = Fanout::new(keyframes);
    let stats = Arc::new(PipelineStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let health = Health::new();
    let opts = EncodeOptions {
        bitrate_kbps: config.bitrate,
        keyint_seconds: config.keyint,
        threads: config.threads,
    };
    let handles = Handles {
        fanout: fanout.clone(),
        stats: stats.clone(),
        health: health.clone(),
        stop: stop.clone(),
    };
    let pipeline = match (camera, source) {
        (Some((open, path)), first) => Pipeline::reopening(
            open,
            first,
            format!("camera {}", path.display()),
            &opts,
            handles,
            config.frames,
        )?,
        (None, Some(source)) => Pipeline::new(source, &opts, handles, config.frames)?,
        (None, None) => return Err("no source".into()),
    };

    let server = match config.rtsp {
        Some(listen) => {
            let opts = ServerOptions {
                listen,
                path: config.rtsp_path.clone(),
                session_timeout: Duration::from_secs(config.session_timeout),
                max_payload: config.rtp_payload_size,
                max_viewers: config.max_viewers,
                ..ServerOptions::default()
            };
            let server = RtspServer::bind(opts, fanout.clone())
                .map_err(|e| format!("cannot serve RTSP on {listen}: {e}"))?;
            Some(server)
        }
        None => None,
    };
    let server_stats = server.as_ref().map(|s| s.stats());

    // Before the banner: whoever reads it may signal at once (a test, a
    // supervisor), and an unhandled SIGTERM or SIGUSR1 would kill the process.
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Int,
        async_signal::Signal::Term,
        async_signal::Signal::Usr1,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let what = format!(
        "{} {}x{} at {} fps",
        fmt.description, fmt.width, fmt.height, fmt.fps
    );
    match &server {
        Some(s) => {
            let addr = s.local_addr().map_err(|e| e.to_string())?;
            let urls = viewer_urls(addr, &config.rtsp_path);
            let udp = s
                .udp_ports()
                .map(|(a, b)| format!(", UDP ports {a}-{b}"))
                .unwrap_or_default();
            log::info!(
                "edgestream {}: streaming {what} at {} (open it in VLC){}{udp}",
                env!("CARGO_PKG_VERSION"),
                urls[0],
                if urls.len() > 1 {
                    format!("; also {}", urls[1..].join(", "))
                } else {
                    String::new()
                }
            );
        }
        None => log::info!(
            "edgestream {}: encoding {what}; RTSP is off",
            env!("CARGO_PKG_VERSION")
        ),
    }

    let (done_tx, done_rx) = smol::channel::bounded(1);
    let thread = std::thread::Builder::new()
        .name("capture-encode".into())
        .spawn(move || {
            let result = pipeline.run();
            let _ = done_tx.send_blocking(result.clone());
            result
        })
        .map_err(|e| format!("cannot start the encoder thread: {e}"))?;

    let result = smol::block_on(async {
        let _server_task = server.map(|s| smol::spawn(s.run()));
        let stats_task = {
            let fanout = fanout.clone();
            let stats = stats.clone();
            let health = health.clone();
            smol::spawn(async move {
                let mut last = Instant::now();
                loop {
                    smol::Timer::after(STATS_INTERVAL).await;
                    let h = health.snapshot();
                    let line = StatsLine {
                        window: stats.take_window(),
                        elapsed: last.elapsed(),
                        viewers: server_stats
                            .as_ref()
                            .map_or(0, |s| s.playing.load(Ordering::Relaxed)),
                        dropped: fanout.dropped_total(),
                        push: h
                            .pushes
                            .iter()
                            .map(|(name, _, detail)| format!("{name} {detail}"))
                            .collect(),
                        source: match h.source {
                            SourceState::Delivering => None,
                            SourceState::Paused => Some("privacy pause".into()),
                            SourceState::Starting => Some("source starting".into()),
                            SourceState::Fault => {
                                Some(h.source_detail.unwrap_or_else(|| "source fault".into()))
                            }
                        },
                    };
                    last = Instant::now();
                    log::info!("stats: {line}");
                }
            })
        };
        let end = smol::future::or(
            async {
                loop {
                    match signals.next().await {
                        // SIGUSR1 flips the privacy pause (like the button).
                        Some(Ok(async_signal::Signal::Usr1)) => {
                            let on = health.toggle_privacy();
                            log::info!("SIGUSR1: privacy pause {}", if on { "on" } else { "off" });
                        }
                        Some(Ok(sig)) => break End::Signal(sig as i32),
                        _ => std::future::pending().await,
                    }
                }
            },
            async {
                End::Pipeline(
                    done_rx
                        .recv()
                        .await
                        .unwrap_or(Err("the encoder thread died".into())),
                )
            },
        )
        .await;
        drop(stats_task);
        Ok::<_, String>(end)
    })?;

    stop.store(true, Ordering::Relaxed);
    let joined = thread.join();
    match result {
        End::Signal(sig) => {
            log::info!("stopping on signal {sig}");
            match joined {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Ok(()),
                Err(_) => Err("the encoder thread panicked".into()),
            }
        }
        End::Pipeline(Ok(Ended::FrameLimit)) => {
            log::info!(
                "stopping: encoded {} frames as asked",
                stats.frames_total.load(Ordering::Relaxed)
            );
            Ok(())
        }
        End::Pipeline(Ok(Ended::EndOfStream)) => {
            log::info!(
                "stopping: the source ended after {} frames",
                stats.frames_total.load(Ordering::Relaxed)
            );
            Ok(())
        }
        End::Pipeline(Ok(Ended::Stopped)) => Ok(()),
        End::Pipeline(Err(e)) => Err(e),
    }
}
