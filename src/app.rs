//! Wiring: builds the source, pipeline, fan-out and servers from a
//! [`Config`], runs them until a signal, the frame limit or the end of the
//! source, and reports why it stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smol::stream::StreamExt;

mod error;
mod gpio;
mod setup;
pub use error::{GpioError, GpioErrorKind, RunError};
use gpio::StatusThread;
use setup::{bind_http, raise_fd_limit};
pub use setup::{
    build_pipeline, camera_opener, command_opener, limit_settings, open_source, open_to_network,
    push_options, server_options, viewer_urls,
};

use crate::config::{Cli, Config};
use crate::fanout::{Fanout, KeyframeRequest};
use crate::health::{Health, SourceState};
use crate::pipeline::{Ended, Handles, PipelineError};
use crate::reload::{PipelineThread, PushRun, Reload};
use crate::rtsp::RtspServer;
use crate::stats::{PipelineStats, StatsLine};
use crate::systemd::Notifier;

/// How often the stats line is logged.
pub const STATS_INTERVAL: Duration = Duration::from_secs(10);

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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

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
