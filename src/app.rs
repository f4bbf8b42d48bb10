//! Wiring: builds the source, pipeline, fan-out and servers from a
//! [`Config`], runs them until a signal, the frame limit or the end of the
//! source, and reports why it stopped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smol::stream::StreamExt;

use crate::config::{Config, GpioLine, SourceSpec};
use crate::fanout::{Fanout, KeyframeRequest};
use crate::health::{Health, SourceState};
use crate::media::Fraction;
use crate::pipeline::{EncodeOptions, Ended, Handles, Opener, Pipeline};
use crate::rtsp::auth::Authenticator;
use crate::rtsp::limits::LimitSettings;
use crate::rtsp::parse::Limits;
use crate::rtsp::{RtspServer, ServerOptions};
use crate::source::testsrc::TestPattern;
use crate::source::v4l2::V4l2Source;
use crate::source::v4l2::negotiate::Request;
use crate::source::y4m::Y4mFile;
use crate::source::{FrameSource, SourceFormat};
use crate::stats::{PipelineStats, StatsLine};
use crate::status::{PrivacyButton, StatusLed};
use crate::systemd::Notifier;

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

/// Whether an RTSP server on `listen` lets anyone on the network watch.
pub fn open_to_network(listen: SocketAddr, has_users: bool) -> bool {
    !has_users && !listen.ip().is_loopback()
}

/// The RTSP server's options from the configuration.
pub fn server_options(config: &Config, listen: SocketAddr) -> Result<ServerOptions, String> {
    let auth = if config.rtsp_users.is_empty() {
        None
    } else {
        let secret = random_secret().map_err(|e| format!("cannot draw a random nonce key: {e}"))?;
        Some(Arc::new(Authenticator::new(
            config.rtsp_users.clone(),
            config.rtsp_basic_auth,
            secret,
            Instant::now(),
        )))
    };
    Ok(ServerOptions {
        listen,
        path: config.rtsp_path.clone(),
        session_timeout: Duration::from_secs(config.session_timeout),
        max_payload: config.rtp_payload_size,
        max_viewers: config.max_viewers,
        parse_limits: Limits {
            max_header_bytes: config.max_request_bytes,
            ..Limits::default()
        },
        limits: LimitSettings {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            max_requests_per_second: config.max_requests_per_second,
            handshake_timeout: Duration::from_secs(config.handshake_timeout),
            idle_timeout: Duration::from_secs(config.idle_timeout),
        },
        auth,
        ..ServerOptions::default()
    })
}

/// 32 bytes from the kernel's CSPRNG.
fn random_secret() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: the pointer and length describe the unfilled part of `key`.
        let n =
            unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), key.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(key)
}

/// Raises the open-file limit to its hard maximum: each RTSP connection is a
/// descriptor, and the soft default (often 1024) is below `max-connections`.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let before = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                lim.rlim_cur = before;
            }
        }
    }
    // rlim_t is 32 bits on 32-bit ARM.
    #[allow(clippy::unnecessary_cast)]
    if (lim.rlim_cur as u64) < want {
        log::warn!(
            "the open-file limit is {}, below the {want} that max-connections needs; raise LimitNOFILE",
            lim.rlim_cur
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
) -> Result<Option<(crate::http::HttpServer, String)>, String> {
    use crate::http::face;
    let Some(listen) = config.http else {
        return Ok(None);
    };
    let auth = server_options(config, listen)?.auth;
    let rtsp_urls = match rtsp {
        Some(s) => viewer_urls(
            s.local_addr().map_err(|e| e.to_string())?,
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
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            let url = face::page_urls(addr).swap_remove(0);
            let _ = page.set(url.clone());
            if open_to_network(listen, !config.rtsp_users.is_empty()) {
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

/// What ended the run.
enum End {
    Signal(i32),
    Pipeline(Result<Ended, String>),
}

/// Runs everything. Returns when stopped; the error is a runtime failure.
pub fn run(config: Config) -> Result<(), String> {
    // First of all, so a signal during startup still stops cleanly (an
    // unhandled SIGTERM or SIGUSR1 would kill the process).
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Int,
        async_signal::Signal::Term,
        async_signal::Signal::Usr1,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if config.rtsp.is_some() {
        raise_fd_limit(config.max_connections as u64 + 64);
    }
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
    // Push targets (validated with the config; parsed again here).
    let push_targets = config
        .push
        .iter()
        .map(|url| crate::push::PushTarget::parse(url).map_err(|e| format!("--push: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let keyframes = Arc::new(KeyframeRequest::default());
    let fanout = Fanout::new(keyframes);
    let stats = Arc::new(PipelineStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    // H.264 passthrough has no raw pictures to make a JPEG from.
    let snapshots = Arc::new(crate::http::snapshot::Snapshots::default());
    let snapshot = (fmt.pixel_format != crate::media::PixelFormat::H264).then(|| snapshots.clone());
    let health = Health::new();
    let notifier = Arc::new(Notifier::from_env());
    // Shows "starting" from here on; the LED goes dark when this is dropped.
    let _status = StatusThread::start(&config, health.clone());
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
        snapshots: snapshots.clone(),
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
            let server = RtspServer::bind(server_options(&config, listen)?, fanout.clone())
                .map_err(|e| format!("cannot serve RTSP on {listen}: {e}"))?;
            if open_to_network(listen, !config.rtsp_users.is_empty()) {
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
            let addr = s.local_addr().map_err(|e| e.to_string())?;
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
    let pushers = crate::push::Pushers::start(&push_targets, &fanout, &health);
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
        let _http_task = http.map(|(h, _)| smol::spawn(h.run()));
        let _systemd_task = smol::spawn(crate::systemd::supervise(
            notifier.clone(),
            stats.clone(),
            health.clone(),
            ready_status,
        ));
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
                        elapsed: last.elapsed(),
                        viewers: server_stats
                            .as_ref()
                            .map_or(0, |s| s.playing.load(Ordering::Relaxed)),
                        connections: server_stats
                            .as_ref()
                            .map_or(0, |s| s.connections.load(Ordering::Relaxed)),
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
                    notifier.status(&line.to_string());
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
        // Push targets say goodbye (RTMP: FCUnpublish, deleteStream) within
        // about a second, then the process exits.
        pushers.stop(crate::push::STOP_GRACE).await;
        Ok::<_, String>(end)
    })?;

    notifier.stopping("stopping");
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
                    PrivacyButton::new(pin, g.active_low)
                        .map_err(|e| format!("privacy button: {g}: {e}"))
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
    what: &str,
) -> Result<linux_embedded_hal::CdevPin, String> {
    use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
    let fail = |e: &dyn std::fmt::Display| format!("{what}: {g}: {e}");
    let mut chip = Chip::new(&g.chip).map_err(|e| fail(&e))?;
    if g.line >= chip.num_lines() {
        return Err(fail(&format_args!(
            "{} has lines 0 to {}",
            chip.name(),
            chip.num_lines().saturating_sub(1)
        )));
    }
    let line = chip.get_line(g.line).map_err(|e| fail(&e))?;
    let handle = if output {
        line.request(
            LineRequestFlags::OUTPUT,
            u8::from(g.active_low),
            "edgestream",
        )
    } else {
        line.request(LineRequestFlags::INPUT, 0, "edgestream")
    }
    .map_err(|e| fail(&e))?;
    linux_embedded_hal::CdevPin::new(handle).map_err(|e| fail(&e))
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
