//! Reload on SIGHUP. [`plan`] is pure: the old and the new configuration
//! in, which keys apply live, which restart the capture pipeline, and which
//! need the process restarted. [`Reload::apply`] is the thin adapter that
//! carries a plan out on the running push targets, RTSP server and
//! pipeline thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::{Cli, Config};
use crate::fanout::Fanout;
use crate::health::{Health, PushHealth};
use crate::pipeline::{Ended, Handles, Pipeline};
use crate::push::{PushOptions, PushTarget, Pushers, TlsSetupError};
use crate::rtsp::ServerControl;
use crate::stats::PipelineStats;

/// How each changed key is applied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Applied at once, nobody dropped: push targets, RTSP users and
    /// limits, the log level.
    pub live: Vec<&'static str>,
    /// Applied by restarting the capture/encode pipeline (viewers and push
    /// targets stay connected and get a keyframe with the new parameters).
    pub pipeline: Vec<&'static str>,
    /// Not applied until the service is restarted (listening sockets,
    /// GPIO lines, per-connection timeouts).
    pub restart: Vec<&'static str>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.pipeline.is_empty() && self.restart.is_empty()
    }
}

/// Compares two configurations key by key.
pub fn plan(old: &Config, new: &Config) -> Plan {
    let mut p = Plan::default();
    macro_rules! key {
        ($list:ident, $name:literal, $($field:ident),+) => {
            if $(old.$field != new.$field)||+ {
                p.$list.push($name);
            }
        };
    }
    key!(live, "push", push);
    key!(live, "rtsp-user", rtsp_users, rtsp_user_entries);
    key!(live, "rtsp-users-file", rtsp_users_file);
    key!(live, "rtsp-basic-auth", rtsp_basic_auth);
    key!(live, "max-viewers", max_viewers);
    key!(live, "max-connections", max_connections);
    key!(live, "max-connections-per-ip", max_connections_per_ip);
    key!(live, "max-requests-per-second", max_requests_per_second);
    key!(live, "log-level", log_level);
    key!(pipeline, "source", source);
    key!(pipeline, "size", width, height);
    key!(pipeline, "fps", fps);
    key!(pipeline, "bitrate", bitrate);
    key!(pipeline, "keyint", keyint);
    key!(pipeline, "threads", threads);
    key!(pipeline, "camera-format", camera_format);
    key!(pipeline, "pace", pace);
    key!(pipeline, "frames", frames);
    key!(pipeline, "source-format", source_format);
    key!(pipeline, "source-stride", source_stride);
    key!(restart, "rtsp", rtsp);
    key!(restart, "rtsp-path", rtsp_path);
    key!(restart, "webrtc-udp", webrtc_udp);
    key!(restart, "webrtc-additional-hosts", webrtc_additional_hosts);
    key!(restart, "rtsp-udp-ports", rtsp_udp_ports);
    key!(restart, "rtp-payload-size", rtp_payload_size);
    key!(restart, "session-timeout", session_timeout);
    key!(restart, "max-request-bytes", max_request_bytes);
    key!(restart, "handshake-timeout", handshake_timeout);
    key!(restart, "idle-timeout", idle_timeout);
    key!(restart, "led", led);
    key!(restart, "button", button);
    key!(restart, "keyframe-burst", keyframe_burst);
    key!(restart, "audio", audio);
    key!(restart, "push-tls-ca", push_tls_ca);
    // Users read from the same file name may have changed inside it.
    if !p.live.contains(&"rtsp-user") && old.rtsp_users != new.rtsp_users {
        p.live.push("rtsp-user");
    }
    p
}

/// The push targets to stop and to start: `(removed, added)`. A changed
/// URL is a removal and an addition; unchanged targets keep running.
pub fn push_diff<'a>(old: &'a [String], new: &'a [String]) -> (Vec<&'a str>, Vec<&'a str>) {
    let removed = old
        .iter()
        .filter(|u| !new.contains(u))
        .map(String::as_str)
        .collect();
    let added = new
        .iter()
        .filter(|u| !old.contains(u))
        .map(String::as_str)
        .collect();
    (removed, added)
}

/// Reads the configuration again as at startup (the `--config` file, then
/// the flags). A bad file is refused with the startup message, and `None`
/// keeps the running configuration.
pub fn reread(cli: Option<&Cli>) -> Option<Config> {
    let Some(cli) = cli.filter(|c| c.config.is_some()) else {
        log::warn!("SIGHUP: no --config file to reload; nothing changes");
        return None;
    };
    match Config::load(cli) {
        Ok(c) => Some(c),
        Err(e) => {
            log::error!("SIGHUP: {e}; keeping the running configuration");
            None
        }
    }
}

/// How long a reload waits for the old pipeline to stop.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a pipeline thread reports its end: (generation, result).
pub type Done = smol::channel::Sender<(u64, Result<Ended, String>)>;

/// The capture/encode thread of one pipeline generation (a reload that
/// restarts the pipeline starts the next one).
pub struct PipelineThread {
    pub generation: u64,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<Ended, String>>>,
}

impl PipelineThread {
    /// Starts `pipeline` (whose `Handles::stop` is `stop`) on its thread.
    pub fn spawn(
        pipeline: Pipeline,
        stop: Arc<AtomicBool>,
        generation: u64,
        done: Done,
    ) -> Result<Self, String> {
        let thread = std::thread::Builder::new()
            .name("capture-encode".into())
            .spawn(move || {
                let result = pipeline.run();
                let _ = done.send_blocking((generation, result.clone()));
                result
            })
            .map_err(|e| format!("cannot start the encoder thread: {e}"))?;
        Ok(Self {
            generation,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the loop and waits for the thread (off the async threads).
    pub async fn stop(&mut self) -> Result<Ended, String> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return Ok(Ended::Stopped);
        };
        smol::unblock(move || thread.join())
            .await
            .unwrap_or_else(|_| Err("the encoder thread panicked".into()))
    }
}

/// One running push target, by the URL it was configured with.
pub struct PushRun {
    pub url: String,
    pub name: String,
    pub pushers: Pushers,
    /// Its entry in the health (removed with it).
    health: Option<Arc<PushHealth>>,
}

impl PushRun {
    pub fn start(
        target: &PushTarget,
        options: &PushOptions,
        fanout: &Arc<Fanout>,
        health: &Health,
    ) -> Result<Self, TlsSetupError> {
        let before = health.pushes().len();
        let pushers = Pushers::start(std::slice::from_ref(target), options, fanout, health)?;
        Ok(Self {
            url: target.url.clone(),
            name: target.display_name(),
            pushers,
            health: health.pushes().get(before).cloned(),
        })
    }
}

/// What a reload acts on.
pub struct Reload<'a> {
    pub pushers: &'a mut Vec<PushRun>,
    pub control: Option<&'a ServerControl>,
    pub fanout: &'a Arc<Fanout>,
    pub stats: &'a Arc<PipelineStats>,
    pub health: &'a Arc<Health>,
    pub snapshots: &'a Arc<crate::http::snapshot::Snapshots>,
    pub done: &'a Done,
}

impl Reload<'_> {
    /// Applies `new` over `old`. Viewers and unchanged push targets are not
    /// touched; the error is a pipeline that cannot start again.
    pub async fn apply(
        &mut self,
        old: &Config,
        new: &Config,
        pipe: &mut PipelineThread,
    ) -> Result<(), String> {
        let plan = plan(old, new);
        if plan.is_empty() {
            log::info!("SIGHUP: configuration reread, nothing changed");
            return Ok(());
        }
        log::info!(
            "SIGHUP: configuration reread; applying {}",
            [&plan.live[..], &plan.pipeline[..]].concat().join(", ")
        );
        let (removed, added) = push_diff(&old.push, &new.push);
        for url in removed {
            if let Some(i) = self.pushers.iter().position(|p| p.url == url) {
                let p = self.pushers.remove(i);
                log::info!(
                    "push {}: removed from the configuration; stopping it",
                    p.name
                );
                if let Some(h) = &p.health {
                    self.health.remove_push(h);
                }
                smol::spawn(p.pushers.stop(crate::push::STOP_GRACE)).detach();
            }
        }
        for url in added {
            match PushTarget::parse(url) {
                Ok(t) => {
                    log::info!("push {}: added to the configuration", t.display_name());
                    let options = crate::app::push_options(new);
                    match PushRun::start(&t, &options, self.fanout, self.health) {
                        Ok(run) => self.pushers.push(run),
                        Err(e) => log::error!("SIGHUP: push {}: {e}", t.display_name()),
                    }
                }
                Err(e) => log::error!("SIGHUP: --push: {e}"),
            }
        }
        if let Some(control) = self.control {
            let listen = control_listen(new);
            match crate::app::server_options(new, listen) {
                Ok(o) => control.update(o.auth, o.limits, o.max_viewers),
                Err(e) => log::error!("SIGHUP: rtsp: {e}; users and limits unchanged"),
            }
        }
        log::set_max_level(new.log_level);
        if !plan.pipeline.is_empty() {
            log::info!(
                "SIGHUP: {} changed: restarting the pipeline (viewers stay connected)",
                plan.pipeline.join(", ")
            );
            let started = Instant::now();
            // A capture loop stuck in a read would hold the reload (and
            // every signal) forever: give up, and let systemd restart us.
            let stopped = smol::future::or(async { Some(pipe.stop().await) }, async {
                smol::Timer::after(STOP_LIMIT).await;
                None
            })
            .await;
            match stopped {
                None => {
                    return Err(format!(
                        "SIGHUP: the pipeline did not stop within {} s to restart; exiting",
                        STOP_LIMIT.as_secs()
                    ));
                }
                Some(Err(e)) => log::warn!("SIGHUP: the old pipeline ended with: {e}"),
                Some(Ok(_)) => {}
            }
            let generation = pipe.generation + 1;
            *pipe = match self.start_pipeline(new, generation) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("SIGHUP: {e}; going on with the previous source settings");
                    self.start_pipeline(old, generation)?
                }
            };
            log::info!(
                "SIGHUP: pipeline restarted in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        if !plan.restart.is_empty() {
            log::warn!(
                "SIGHUP: {} changed: takes effect after a restart (systemctl restart edgestream)",
                plan.restart.join(", ")
            );
        }
        Ok(())
    }
}

impl Reload<'_> {
    fn start_pipeline(&self, config: &Config, generation: u64) -> Result<PipelineThread, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = Handles {
            fanout: self.fanout.clone(),
            stats: self.stats.clone(),
            health: self.health.clone(),
            stop: stop.clone(),
            snapshots: self.snapshots.clone(),
        };
        let (pipeline, _) = crate::app::build_pipeline(config, handles)?;
        PipelineThread::spawn(pipeline, stop, generation, self.done.clone())
    }
}

/// The RTSP address in `new` (a listen change needs a restart; the options
/// are only used for users and limits).
fn control_listen(new: &Config) -> std::net::SocketAddr {
    new.rtsp
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_into_live_pipeline_and_restart() {
        let old = Config::default();
        assert!(plan(&old, &old).is_empty());
        let mut new = old.clone();
        new.push = vec!["tcp://127.0.0.1:6666/a".into()];
        new.max_viewers = 5;
        new.width = 320;
        new.idle_timeout = 5;
        let p = plan(&old, &new);
        assert_eq!(p.live, vec!["push", "max-viewers"]);
        assert_eq!(p.pipeline, vec!["size"]);
        assert_eq!(p.restart, vec!["idle-timeout"]);
    }

    #[test]
    fn push_changes_are_removals_and_additions() {
        let old = vec!["a".to_string(), "b".to_string()];
        let new = vec!["b".to_string(), "c".to_string()];
        assert_eq!(push_diff(&old, &new), (vec!["a"], vec!["c"]));
        assert_eq!(push_diff(&old, &old), (vec![], vec![]));
    }
}
