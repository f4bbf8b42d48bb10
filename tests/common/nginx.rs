//! nginx with the RTMP module as a push target.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{is_listening, signal, tool, wait_timeout};

/// Where Debian's libnginx-mod-rtmp puts the module.
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx with the RTMP module, run unprivileged in the foreground from a
/// config in a temp dir (pid, logs, temp paths there too), on loopback.
pub struct Nginx {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

/// Runs nginx unprivileged in the foreground from `dir/nginx.conf`: the
/// shared head (`module` loaded, one process, pid and error log in `dir`)
/// and `body`; waits until it listens on 127.0.0.1:`port`. `what` names it
/// in panics.
pub fn spawn_nginx(dir: &Path, module: &str, body: &str, port: u16, what: &str) -> Child {
    let d = dir.display();
    let conf = format!(
        "load_module {module};\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n{body}"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        // The startup error log too, not /var/log/nginx (needs root).
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_listening(port) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{what} exited with {status}:\n{}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Nginx {
    /// Starts nginx on 127.0.0.1:`port`, application `live` with
    /// `record all` into `dir/rec`, passing the publisher's metadata to
    /// players as it is (`meta copy`).
    pub fn start(dir: &Path, port: u16) -> Self {
        assert!(
            Path::new(NGINX_RTMP_MODULE).is_file(),
            "{NGINX_RTMP_MODULE} is missing; run `bash .ci/run` or `apt-get install nginx libnginx-mod-rtmp`"
        );
        let _ = tool("nginx");
        std::fs::create_dir_all(dir.join("rec")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let d = dir.display();
        let body = format!(
            "http {{ client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; \
             fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp; \
             access_log off; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; meta copy; record all; record_path {d}/rec; }} }} }}\n"
        );
        Self {
            child: Some(spawn_nginx(dir, NGINX_RTMP_MODULE, &body, port, "nginx")),
            dir: dir.to_path_buf(),
            port,
        }
    }

    /// The recording of stream `name`.
    pub fn recording(&self, name: &str) -> Vec<u8> {
        let path = self.dir.join("rec").join(format!("{name}.flv"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// After a publisher of `frames` frames ended on stream `name`: it said
    /// goodbye (deleteStream), its stream key arguments `args` reached nginx,
    /// and, once nginx is stopped, the recording has at least 95% of the
    /// frames and decodes cleanly, every frame. `what` names it in messages.
    pub fn check_finished(&mut self, what: &str, name: &str, args: &str, frames: usize) {
        let log = self.error_log();
        assert!(log.contains("deleteStream"), "no deleteStream:\n{log}");
        assert!(log.contains(&format!("args='{args}'")), "{log}");
        self.stop();
        let bytes = self.recording(name);
        let rec = super::flv::check_flv(what, &bytes);
        eprintln!("{what}: {frames} frames encoded, {} recorded", rec.frames);
        assert!(
            rec.frames * 100 >= frames * 95,
            "{} of {frames} frames recorded",
            rec.frames
        );
        let (errors, decoded) = super::flv::ffmpeg_check(&self.dir, "check.flv", &bytes);
        assert!(errors.is_empty(), "decode errors:\n{errors}");
        assert_eq!(decoded, rec.frames);
    }

    /// Kills nginx at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops nginx cleanly (SIGQUIT), finishing its recordings.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGQUIT);
            if wait_timeout(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}
