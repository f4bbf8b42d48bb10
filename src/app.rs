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
use crate::pipeline::{EncodeOptions, Ended, Handles, Pipeline};
use crate::rtsp::{RtspServer, ServerOptions};
use crate::source::FrameSource;
use crate::source::testsrc::TestPattern;
use crate::source::y4m::Y4mFile;
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
        SourceSpec::Device(path) => Err(format!(
            "{}: V4L2 capture is not available in this build",
            path.display()
        )),
    }
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
    let source = open_source(&config)?;
    let fmt = source.format().clone();
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
    let notifier = Arc::new(Notifier::from_env());
    // Shows "starting" from here on; the LED goes dark when this is dropped.
    let _status = StatusThread::start(&config, health.clone());
    let pipeline = Pipeline::new(
        source,
        &EncodeOptions {
            bitrate_kbps: config.bitrate,
            keyint_seconds: config.keyint,
            threads: config.threads,
        },
        Handles {
            fanout: fanout.clone(),
            stats: stats.clone(),
            health: health.clone(),
            stop: stop.clone(),
        },
        config.frames,
    )?;

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

    // Before the banner: a SIGTERM right after it must stop cleanly, not kill.
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;

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
                "edgestream {}: streaming {what} at {} (open it in VLC){}{udp}",
                env!("CARGO_PKG_VERSION"),
                urls[0],
                if urls.len() > 1 {
                    format!("; also {}", urls[1..].join(", "))
                } else {
                    String::new()
                }
            );
            format!("streaming {what} at {}", urls[0])
        }
        None => {
            log::info!(
                "edgestream {}: encoding {what}; RTSP is off",
                env!("CARGO_PKG_VERSION")
            );
            format!("encoding {what}; RTSP is off")
        }
    };

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
                match signals.next().await {
                    Some(Ok(sig)) => End::Signal(sig as i32),
                    _ => std::future::pending().await,
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
