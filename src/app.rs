//! Wiring: builds the source, pipeline, fan-out and servers from a
//! [`Config`], runs them until a signal, the frame limit or the end of the
//! source, and reports why it stopped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smol::stream::StreamExt;

mod error;
pub use error::{GpioError, GpioErrorKind, RunError};

use crate::config::{Cli, Config, GpioLine, SourceSpec};
use crate::fanout::{Fanout, KeyframeRequest};
use crate::health::{Health, SourceState};
use crate::media::Fraction;
use crate::pipeline::{EncodeOptions, Ended, Handles, Opener, Pipeline, PipelineError};
use crate::reload::{PipelineThread, PushRun, Reload};
use crate::rtsp::auth::Authenticator;
use crate::rtsp::limits::LimitSettings;
use crate::rtsp::parse::Limits;
use crate::rtsp::{RtspServer, ServerOptions};
use crate::source::testsrc::TestPattern;
use crate::source::v4l2::V4l2Source;
use crate::source::v4l2::negotiate::Request;
use crate::source::y4m::Y4mFile;
use crate::source::{FrameSource, SourceError, SourceFormat};
use crate::stats::{PipelineStats, StatsLine};
use crate::status::{PrivacyButton, StatusLed};
use crate::systemd::Notifier;

/// How often the stats line is logged.
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Opens the configured source.
pub fn open_source(config: &Config) -> Result<Box<dyn FrameSource>, SourceError> {
    let fps = Fraction::new(config.fps, 1);
    match &config.source {
        SourceSpec::TestPattern => {
            TestPattern::new(config.size.width, config.size.height, fps, config.pace)
                .map(|s| Box::new(s) as Box<dyn FrameSource>)
                .map_err(SourceError::from)
        }
        SourceSpec::Y4m(path) => Y4mFile::open(path, config.pace)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from),
        SourceSpec::Device(path) => camera_opener(config, path)(),
        SourceSpec::Command(_) | SourceSpec::Stdin => command_opener(config, None)(),
    }
}

/// Starts the configured command (or takes stdin); called again by the
/// pipeline after every failure. `stop` cuts short a wait for its output.
pub fn command_opener(config: &Config, stop: Option<Arc<AtomicBool>>) -> Opener {
    use crate::source::command::{CommandSource, Settings};
    let settings = Settings {
        argv: match &config.source {
            SourceSpec::Command(words) => words.clone(),
            _ => Vec::new(),
        },
        format: config.source_format,
        width: config.size.width,
        height: config.size.height,
        fps: Fraction::new(config.fps, 1),
        stride: config.source_stride,
        stop,
    };
    Box::new(move || {
        CommandSource::open(&settings)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from)
    })
}

/// Opens the camera `path` for the configured size and frame rate; called
/// again by the pipeline after every failure.
pub fn camera_opener(config: &Config, path: &std::path::Path) -> Opener {
    let req = Request {
        width: config.size.width,
        height: config.size.height,
        fps: config.fps,
        format: config.camera_format,
    };
    let path = path.to_path_buf();
    Box::new(move || {
        V4l2Source::open(&path, req)
            .map(|s| Box::new(s) as Box<dyn FrameSource>)
            .map_err(SourceError::from)
    })
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

/// Whether an RTSP server on `listen` lets anyone on the network watch.
pub fn open_to_network(listen: SocketAddr, has_users: bool) -> bool {
    !has_users && !listen.ip().is_loopback()
}

/// The RTSP server's options from the configuration.
pub fn server_options(config: &Config, listen: SocketAddr) -> Result<ServerOptions, RunError> {
    let auth = if config.rtsp_users().is_empty() {
        None
    } else {
        let secret = random_secret().map_err(RunError::RandomKey)?;
        Some(Arc::new(Authenticator::new(
            config.rtsp_users().clone(),
            config.rtsp_basic_auth,
            secret,
            Instant::now(),
        )))
    };
    Ok(ServerOptions {
        listen,
        path: config.rtsp_path.clone(),
        session_timeout: config.session_timeout,
        max_payload: config.rtp_payload_size,
        max_viewers: config.max_viewers,
        parse_limits: Limits {
            max_header_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        limits: limit_settings(config),
        auth,
        udp_ports: config.rtsp_udp_ports,
        audio: config.audio == crate::push::Audio::Silent,
        ..ServerOptions::default()
    })
}

/// 32 bytes from the kernel's CSPRNG.
fn random_secret() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    crate::sys::fill_random(&mut key)?;
    Ok(key)
}

/// Raises the open-file limit to its hard maximum: each RTSP connection is a
/// descriptor, and the soft default (often 1024) is below `max-connections`.
fn raise_fd_limit(want: u64) {
    let Some(limit) = crate::sys::raise_nofile_limit() else {
        return;
    };
    if limit < want {
        log::warn!(
            "the open-file limit is {limit}, below the {want} that max-connections needs; raise LimitNOFILE"
        );
    }
}

/// Binds the HTTP face (same users and limits as RTSP) and returns it with
/// its page URL. A port that cannot be bound is logged, not fatal: the
/// page is an extra, streaming goes on without it.
fn bind_http(
    config: &Config,
    fanout: &Arc<Fanout>,
    stats: &Arc<PipelineStats>,
    health: &Arc<Health>,
    rtsp: &Option<RtspServer>,
    source: &str,
    snapshots: Option<Arc<crate::http::snapshot::Snapshots>>,
) -> Result<Option<(crate::http::HttpServer, String)>, RunError> {
    use crate::http::face;
    let Some(listen) = config.http else {
        return Ok(None);
    };
    let auth = server_options(config, listen)?.auth;
    let rtsp_urls = match rtsp {
        Some(s) => viewer_urls(
            s.local_addr().map_err(RunError::local_addr("rtsp"))?,
            &config.rtsp_path,
        ),
        None => Vec::new(),
    };
    let facts = face::Facts {
        fanout: fanout.clone(),
        stats: stats.clone(),
        health: health.clone(),
        rtsp: rtsp.as_ref().map(|s| s.stats()),
        rtsp_urls: rtsp_urls.clone(),
        page_url: None,
        source: source.to_string(),
        bitrate_kbps: config.bitrate,
        started: Instant::now(),
    };
    // The URL is known once bound; the status source is built after.
    let page = Arc::new(std::sync::OnceLock::new());
    let p = page.clone();
    let status = face::status_source(facts);
    let with_url: crate::http::server::StatusSource = Arc::new(move |h| {
        let mut s = status(h);
        s.page_url = p.get().cloned();
        s
    });
    match crate::http::HttpServer::bind(
        face::options(config, listen, auth, snapshots),
        fanout.clone(),
        with_url,
    ) {
        Ok(server) => {
            let addr = server.local_addr().map_err(RunError::local_addr("http"))?;
            let url = face::page_urls(addr).swap_remove(0);
            let _ = page.set(url.clone());
            if open_to_network(listen, !config.rtsp_users().is_empty()) {
                log::warn!(
                    "http: listening on {listen} without authentication: anyone who can reach this \
                     device can watch; set rtsp-users-file (or rtsp-user), or listen on 127.0.0.1"
                );
            }
            Ok(Some((server, url)))
        }
        Err(e) => {
            log::error!(
                "http: cannot serve on {listen}: {e}; going on without the page (set http = \"ADDR:PORT\" or off)"
            );
            Ok(None)
        }
    }
}

/// Opens the configured source (a camera that is not there yet is waited
/// for) and builds the pipeline over it; also returns the format it starts
/// with, for the banner.
pub fn build_pipeline(
    config: &Config,
    handles: Handles,
) -> Result<(Pipeline, SourceFormat), RunError> {
    // A camera that is not there (yet) is not fatal: the pipeline keeps
    // trying. A command is started by the pipeline thread (its parent-death
    // signal follows that thread), and restarted after every failure.
    // Other sources must open now.
    let (source, camera) = match &config.source {
        SourceSpec::Command(words) => (
            None,
            Some((
                command_opener(config, Some(handles.stop.clone())),
                crate::source::command::display_name(words),
            )),
        ),
        SourceSpec::Device(path) => {
            let mut open = camera_opener(config, path);
            match open() {
                Ok(s) => (Some(s), Some((open, format!("camera {}", path.display())))),
                Err(e) if e.is_recoverable() => {
                    log::warn!("{e}; waiting for it");
                    (None, Some((open, format!("camera {}", path.display()))))
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => (Some(open_source(config)?), None),
    };
    let fmt = match &source {
        Some(s) => s.format().clone(),
        None => SourceFormat {
            width: config.size.width,
            height: config.size.height,
            fps: Fraction::new(config.fps, 1),
            pixel_format: crate::media::PixelFormat::I420,
            description: match &config.source {
                SourceSpec::Command(_) => format!("{} (starting)", config.source),
                _ => format!("camera {} (not there yet)", config.source),
            },
        },
    };
    if !matches!(config.source, SourceSpec::TestPattern)
        && (fmt.width, fmt.height, fmt.fps)
            != (
                config.size.width,
                config.size.height,
                Fraction::new(config.fps, 1),
            )
    {
        log::info!(
            "source: {} delivers {}x{} at {} fps; using that",
            fmt.description,
            fmt.width,
            fmt.height,
            fmt.fps
        );
    }
    let opts = EncodeOptions {
        bitrate_kbps: config.bitrate,
        keyint_seconds: config.keyint.as_secs_f64(),
        threads: config.threads,
    };
    let pipeline = match (camera, source) {
        (Some((open, name)), first) => {
            Pipeline::reopening(open, first, name, &opts, handles, config.frames)?
        }
        (None, Some(source)) => Pipeline::new(source, &opts, handles, config.frames)?,
        (None, None) => return Err(RunError::NoSource),
    }
    .with_slate(
        config.size.width,
        config.size.height,
        Fraction::new(config.fps, 1),
    );
    Ok((pipeline, fmt))
}

/// The connection limits from the config, the same for the RTSP server and
/// the HTTP face.
pub fn limit_settings(config: &Config) -> LimitSettings {
    LimitSettings {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        max_requests_per_second: config.max_requests_per_second,
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
    }
}

/// The push settings shared by every target.
pub fn push_options(config: &Config) -> crate::push::PushOptions {
    crate::push::PushOptions {
        tls_ca: config.push_tls_ca.clone(),
        audio: config.audio,
    }
}

/// What the main loop waits for.
enum Event {
    Signal(Option<std::io::Result<async_signal::Signal>>),
    Done(Result<(u64, Result<Ended, PipelineError>), smol::channel::RecvError>),
}

/// What ended the run.
enum End {
    Signal(i32),
    Pipeline(Result<Ended, RunError>),
}

/// Runs everything. Returns when stopped; the error is a runtime failure.
pub fn run(config: Config) -> Result<(), RunError> {
    run_reloadable(config, None)
}

/// [`run`], with SIGHUP reloading the configuration from `cli` (its
/// `--config` file, then its flags, as at startup).
pub fn run_reloadable(config: Config, cli: Option<Cli>) -> Result<(), RunError> {
    // First of all, so a signal during startup still stops cleanly (an
    // unhandled SIGTERM, SIGUSR1 or SIGHUP would kill the process).
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Int,
        async_signal::Signal::Term,
        async_signal::Signal::Usr1,
        async_signal::Signal::Hup,
    ])
    .map_err(RunError::Signals)?;
    if config.rtsp.is_some() {
        raise_fd_limit(config.max_connections as u64 + 64);
    }
    // Push targets (validated with the config; parsed again here).
    let push_targets = config
        .push
        .iter()
        .map(|url| crate::push::PushTarget::parse(url).map_err(RunError::PushTarget))
        .collect::<Result<Vec<_>, _>>()?;
    let keyframes = Arc::new(KeyframeRequest::with_budget(
        config.keyframe_burst,
        crate::fanout::KEYFRAME_REFILL,
    ));
    let fanout = Fanout::new(keyframes);
    let stats = Arc::new(PipelineStats::default());
    // H.264 passthrough has no raw pictures to make a JPEG from (decided
    // below, once the source's format is known).
    let snapshots = Arc::new(crate::http::snapshot::Snapshots::default());
    let health = Health::new();
    let notifier = Arc::new(Notifier::from_env());
    // Shows "starting" from here on; the LED goes dark when this is dropped.
    let _status = StatusThread::start(&config, health.clone());
    let pipe_stop = Arc::new(AtomicBool::new(false));
    let handles = Handles {
        fanout: fanout.clone(),
        stats: stats.clone(),
        health: health.clone(),
        stop: pipe_stop.clone(),
        snapshots: snapshots.clone(),
    };
    let (pipeline, fmt) = build_pipeline(&config, handles)?;
    let snapshot = (fmt.pixel_format != crate::media::PixelFormat::H264).then(|| snapshots.clone());

    let server = match config.rtsp {
        Some(listen) => {
            let server = RtspServer::bind(server_options(&config, listen)?, fanout.clone())
                .map_err(|source| RunError::Rtsp { listen, source })?;
            if open_to_network(listen, !config.rtsp_users().is_empty()) {
                log::warn!(
                    "rtsp: listening on {listen} without authentication: anyone who can reach this \
                     device can watch; set rtsp-users-file (or rtsp-user), or listen on 127.0.0.1"
                );
            }
            Some(server)
        }
        None => None,
    };
    let server_stats = server.as_ref().map(|s| s.stats());
    let http = bind_http(
        &config,
        &fanout,
        &stats,
        &health,
        &server,
        &fmt.description,
        snapshot,
    )?;

    let what = format!(
        "{} {}x{} at {} fps",
        fmt.description, fmt.width, fmt.height, fmt.fps
    );
    let ready_status = match &server {
        Some(s) => {
            let addr = s.local_addr().map_err(RunError::local_addr("rtsp"))?;
            let urls = viewer_urls(addr, &config.rtsp_path);
            let udp = s
                .udp_ports()
                .map(|(a, b)| format!(", UDP ports {a}-{b}"))
                .unwrap_or_default();
            log::info!(
                "edgestream {}: streaming {what} at {} (open it in VLC){}{udp}{}",
                env!("CARGO_PKG_VERSION"),
                urls[0],
                if urls.len() > 1 {
                    format!("; also {}", urls[1..].join(", "))
                } else {
                    String::new()
                },
                http.as_ref()
                    .map_or(String::new(), |h| format!("; in a browser {}", h.1)),
            );
            format!("streaming {what} at {}", urls[0])
        }
        None => {
            log::info!(
                "edgestream {}: encoding {what}; RTSP is off{}",
                env!("CARGO_PKG_VERSION"),
                http.as_ref()
                    .map_or(String::new(), |h| format!("; in a browser {}", h.1)),
            );
            format!("encoding {what}; RTSP is off")
        }
    };

    // Before the encoder starts, so push targets subscribe in time for the
    // first keyframe.
    let mut pushers: Vec<PushRun> = push_targets
        .iter()
        .map(|t| PushRun::start(t, &push_options(&config), &fanout, &health))
        .collect::<Result<_, _>>()
        .map_err(RunError::PushTls)?;
    let (done_tx, done_rx) = smol::channel::bounded(4);
    let mut pipe = PipelineThread::spawn(pipeline, pipe_stop, 0, done_tx.clone())?;
    let control = server.as_ref().map(|s| s.control());

    let result = smol::block_on(async {
        let _server_task = server.map(|s| smol::spawn(s.run()));
        let _http_task = http.map(|(h, _)| smol::spawn(h.run()));
        // Listeners are bound and the capture thread runs: READY=1 now,
        // camera or not.
        let _systemd_task = {
            let health = health.clone();
            let server_stats = server_stats.clone();
            smol::spawn(crate::systemd::supervise(
                notifier.clone(),
                health.clone(),
                move || {
                    let viewers = server_stats
                        .as_ref()
                        .map_or(0, |s| s.playing.load(Ordering::Relaxed));
                    crate::systemd::status_text(&health.snapshot(), &ready_status, viewers)
                },
            ))
        };
        let stats_task = {
            let fanout = fanout.clone();
            let stats = stats.clone();
            let health = health.clone();
            let notifier = notifier.clone();
            smol::spawn(async move {
                let mut last = Instant::now();
                loop {
                    smol::Timer::after(STATS_INTERVAL).await;
                    let h = health.snapshot();
                    let line = StatsLine {
                        window: stats.take_window(),
                        threads: stats.threads(),
                        elapsed: last.elapsed(),
                        viewers: server_stats
                            .as_ref()
                            .map_or(0, |s| s.playing.load(Ordering::Relaxed)),
                        connections: server_stats
                            .as_ref()
                            .map_or(0, |s| s.connections.load(Ordering::Relaxed)),
                        dropped: fanout.take_drops(),
                        push: h
                            .pushes
                            .iter()
                            .map(|p| format!("{} {}", p.name, p.detail))
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
                    notifier.status(&line.to_string());
                }
            })
        };
        let mut running = config.clone();
        let end = loop {
            let event = smol::future::or(async { Event::Signal(signals.next().await) }, async {
                Event::Done(done_rx.recv().await)
            })
            .await;
            match event {
                // SIGUSR1 flips the privacy pause (like the button).
                Event::Signal(Some(Ok(async_signal::Signal::Usr1))) => {
                    let on = health.toggle_privacy();
                    log::info!("SIGUSR1: privacy pause {}", if on { "on" } else { "off" });
                }
                Event::Signal(Some(Ok(async_signal::Signal::Hup))) => {
                    let Some(new) = crate::reload::reread(cli.as_ref()) else {
                        continue;
                    };
                    let mut ctx = Reload {
                        pushers: &mut pushers,
                        control: control.as_ref(),
                        fanout: &fanout,
                        stats: &stats,
                        health: &health,
                        snapshots: &snapshots,
                        done: &done_tx,
                    };
                    match ctx.apply(&running, &new, &mut pipe).await {
                        Ok(()) => running = new,
                        Err(e) => break End::Pipeline(Err(e)),
                    }
                }
                Event::Signal(Some(Ok(sig))) => break End::Signal(sig as i32),
                Event::Signal(_) => {
                    break loop {
                        // No more signals: wait for the pipeline alone.
                        match done_rx.recv().await {
                            Ok((g, result)) if g == pipe.generation => {
                                break End::Pipeline(result.map_err(RunError::from));
                            }
                            Ok(_) => {}
                            Err(_) => break End::Pipeline(Err(RunError::EncoderDied)),
                        }
                    };
                }
                Event::Done(Ok((generation, result))) if generation == pipe.generation => {
                    break End::Pipeline(result.map_err(RunError::from));
                }
                // A pipeline replaced by a reload reporting its end.
                Event::Done(Ok(_)) => {}
                Event::Done(Err(_)) => {
                    break End::Pipeline(Err(RunError::EncoderDied));
                }
            }
        };
        drop(stats_task);
        // Push targets say goodbye (RTMP: FCUnpublish, deleteStream) within
        // about a second, then the process exits.
        let stopping: Vec<_> = pushers
            .into_iter()
            .map(|p| smol::spawn(p.pushers.stop(crate::push::STOP_GRACE)))
            .collect();
        for task in stopping {
            task.await;
        }
        notifier.stopping("stopping");
        let joined = pipe.stop().await;
        (end, joined)
    });
    let (result, joined) = result;
    match result {
        End::Signal(sig) => {
            log::info!("stopping on signal {sig}");
            joined.map(|_| ())
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

/// The status LED and privacy button thread (see [`crate::status`]); stops
/// and turns the LED off when dropped.
struct StatusThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StatusThread {
    /// Opens the configured pins and starts the thread; `None` if there are
    /// no pins to drive. A pin that cannot be opened is logged and left out:
    /// the LED and button are extras, streaming goes on without them.
    fn start(config: &Config, health: Arc<Health>) -> Option<Self> {
        let led = config.led.as_ref().and_then(|g| {
            open_gpio(g, true, "status LED")
                .map(|pin| StatusLed::new(pin, g.active_low))
                .inspect_err(|e| log::warn!("{e}; running without it"))
                .ok()
        });
        let button = config.button.as_ref().and_then(|g| {
            open_gpio(g, false, "privacy button")
                .and_then(|pin| {
                    PrivacyButton::new(pin, g.active_low).map_err(|e| GpioError {
                        what: "privacy button",
                        line: g.clone(),
                        kind: GpioErrorKind::Pin(e),
                    })
                })
                .inspect_err(|e| log::warn!("{e}; running without it"))
                .ok()
        });
        if led.is_none() && button.is_none() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("status".into())
            .spawn(move || crate::status::run(led, button, health, s))
            .inspect_err(|e| log::warn!("status LED: cannot start its thread: {e}"))
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StatusThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::warn!("status LED: its thread panicked");
            }
        }
    }
}

/// Requests a GPIO line through the character device, as an output (the
/// LED, initially dark) or an input (the button). The line is requested
/// without the kernel's active-low flag: [`crate::status`] applies
/// `active-low` itself, since `CdevPin` writes physical levels.
fn open_gpio(
    g: &GpioLine,
    output: bool,
    what: &'static str,
) -> Result<linux_embedded_hal::CdevPin, GpioError> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let error = |kind| GpioError {
        what,
        line: g.clone(),
        kind,
    };
    let fail = |e| error(GpioErrorKind::Cdev(e));
    let mut chip = Chip::new(&g.chip).map_err(fail)?;
    if g.line >= chip.num_lines() {
        return Err(error(GpioErrorKind::NoSuchLine {
            chip: chip.name().to_string(),
            lines: chip.num_lines(),
        }));
    }
    let line = chip.get_line(g.line).map_err(fail)?;
    let handle = if output {
        line.request(
            LineRequestFlags::OUTPUT,
            u8::from(g.active_low),
            "edgestream",
        )
    } else {
        line.request(LineRequestFlags::INPUT, 0, "edgestream")
    }
    .map_err(fail)?;
    linux_embedded_hal::CdevPin::new(handle).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_for_unauthenticated_network_listeners() {
        let any: SocketAddr = "0.0.0.0:8554".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8554".parse().unwrap();
        let v6: SocketAddr = "[::]:8554".parse().unwrap();
        assert!(open_to_network(any, false));
        assert!(open_to_network(v6, false));
        assert!(!open_to_network(any, true));
        assert!(!open_to_network(lo, false));
    }

    #[test]
    fn viewer_urls_name_the_bound_address() {
        let lo: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(viewer_urls(lo, "/live"), vec!["rtsp://127.0.0.1:9000/live"]);
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        let urls = viewer_urls(any, "/cam");
        assert!(
            urls.iter().any(|u| u == "rtsp://127.0.0.1:9000/cam"),
            "{urls:?}"
        );
        assert!(
            urls.iter().all(|u| !u.contains('[')),
            "IPv4 listener lists IPv4 only"
        );
    }
}
