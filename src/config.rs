//! One configuration, from a TOML file and command-line flags with the same
//! names (`--rtsp-path` and `rtsp-path = ...`); flags win. Every key has a
//! default. Validation names the flag or key at fault, what it got, and what
//! it takes.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::source::Pace;

/// The command line. Help texts are the reference for the README's table.
#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "edgestream",
    version,
    about = "Live H.264 from a V4L2 camera (or a test pattern) over RTSP, FLV and RTMP, in one static binary.",
    long_about = "Live H.264 from a V4L2 camera (or a test pattern) over RTSP, FLV and RTMP, in one static binary.\n\n\
        With no arguments it streams a moving test pattern at rtsp://<host>:8554/live.\n\
        Every flag can also be set in the --config file under the same name without the dashes \
        (e.g. `rtsp-path = \"/live\"`); flags override the file.\n\n\
        SIGUSR1 toggles the privacy pause (camera closed, viewers stay connected).\n\n\
        Exit status: 0 on a clean stop (also SIGINT/SIGTERM, --frames, end of file), \
        1 on a runtime failure, 2 on bad usage or configuration."
)]
pub struct Cli {
    /// Read settings from this TOML file; flags given as well override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where frames come from: `testsrc` (built-in moving pattern), a V4L2 camera
    /// (/dev/videoN, /dev/v4l/by-id/...) or a 4:2:0 .y4m file. [default: testsrc]
    #[arg(long, value_name = "testsrc|/dev/videoN|FILE.y4m")]
    pub source: Option<String>,

    /// Picture size, both even (a .y4m file uses its own). [default: 640x480]
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,

    /// Frames per second, 1-120 (a .y4m file uses its own). [default: 30]
    #[arg(long, value_name = "N")]
    pub fps: Option<u32>,

    /// Target video bitrate in kbit/s (ABR, capped by VBV at the same rate). [default: 1000]
    #[arg(long, value_name = "KBPS")]
    pub bitrate: Option<u32>,

    /// Seconds between keyframes; new viewers also get one at once. [default: 2]
    #[arg(long, value_name = "SECONDS")]
    pub keyint: Option<f64>,

    /// x264 threads; 0 lets x264 choose from the CPU count. [default: 0]
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,

    /// RTSP server address, or `off`. [default: 0.0.0.0:8554]
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub rtsp: Option<String>,

    /// Path of the stream on the RTSP server. [default: /live]
    #[arg(long, value_name = "/PATH")]
    pub rtsp_path: Option<String>,

    /// Push the stream to a server: rtmp://host[:port]/app/stream or
    /// tcp://host:port/name (raw FLV). Repeat for several targets.
    #[arg(long, value_name = "URL")]
    pub push: Vec<String>,

    /// Stop cleanly after this many encoded frames (exit 0). [default: run until stopped]
    #[arg(long, value_name = "N")]
    pub frames: Option<u64>,

    /// Pace the test pattern or a file at its frame rate (`realtime`) or as fast
    /// as the encoder goes (`asap`). [default: realtime]
    #[arg(long, value_name = "realtime|asap")]
    pub pace: Option<String>,

    /// Largest RTP payload in bytes; keep UDP packets under the path MTU. [default: 1400]
    #[arg(long, value_name = "BYTES")]
    pub rtp_payload_size: Option<usize>,

    /// Seconds an RTSP session lives without a request or RTCP from its viewer. [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub session_timeout: Option<u64>,

    /// Most RTSP sessions at once; more get 453 Not Enough Bandwidth. [default: 32]
    #[arg(long, value_name = "N")]
    pub max_viewers: Option<usize>,

    /// Log level: error, warn, info, debug or trace. [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Camera pixel format: `auto` picks the best the camera offers at --size and
    /// --fps (YU12, NV12, YUYV, UYVY, MJPG, H264 in that order); a fourcc forces one.
    /// [default: auto]
    #[arg(long, value_name = "auto|FOURCC")]
    pub camera_format: Option<String>,

    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// List the V4L2 devices (/dev/video*) with their names and stable
    /// /dev/v4l/by-id paths, and exit.
    #[arg(long)]
    pub list_devices: bool,

    /// List the formats, sizes and frame rates of the --source camera (of every
    /// camera if --source is not one) and how edgestream would take each, and exit.
    #[arg(long)]
    pub list_formats: bool,
}

/// The config file: the same keys as the long flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    source: Option<String>,
    size: Option<String>,
    fps: Option<u32>,
    bitrate: Option<u32>,
    keyint: Option<f64>,
    threads: Option<u32>,
    rtsp: Option<String>,
    rtsp_path: Option<String>,
    push: Option<Vec<String>>,
    frames: Option<u64>,
    pace: Option<String>,
    rtp_payload_size: Option<usize>,
    session_timeout: Option<u64>,
    max_viewers: Option<usize>,
    log_level: Option<String>,
    camera_format: Option<String>,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    TestPattern,
    Device(PathBuf),
    Y4m(PathBuf),
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("testsrc"),
            Self::Device(p) | Self::Y4m(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The effective, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: SourceSpec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub keyint: f64,
    pub threads: u32,
    /// `None`: the RTSP server is off.
    pub rtsp: Option<SocketAddr>,
    pub rtsp_path: String,
    pub push: Vec<String>,
    pub frames: Option<u64>,
    pub pace: Pace,
    pub rtp_payload_size: usize,
    pub session_timeout: u64,
    pub max_viewers: usize,
    pub log_level: log::LevelFilter,
    /// A camera pixel format to insist on; `None` picks the best.
    pub camera_format: Option<crate::media::PixelFormat>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            source: SourceSpec::TestPattern,
            width: 640,
            height: 480,
            fps: 30,
            bitrate: 1000,
            keyint: 2.0,
            threads: 0,
            rtsp: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8554))),
            rtsp_path: "/live".into(),
            push: Vec::new(),
            frames: None,
            pace: Pace::Realtime,
            rtp_payload_size: 1400,
            session_timeout: 60,
            max_viewers: 32,
            log_level: log::LevelFilter::Info,
            camera_format: None,
        }
    }
}

/// A configuration error, naming the flag or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Which flag or key a value came from, for messages.
struct Origin<'a> {
    key: &'static str,
    file: Option<&'a Path>,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            Some(p) => write!(f, "`{}` in {}", self.key, p.display()),
            None => write!(f, "--{}", self.key),
        }
    }
}

/// Takes the flag if given, else the file's key; remembers which.
fn pick<'a, T>(
    flag: Option<T>,
    file: Option<T>,
    key: &'static str,
    path: Option<&'a Path>,
) -> Option<(T, Origin<'a>)> {
    match (flag, file) {
        (Some(v), _) => Some((v, Origin { key, file: None })),
        (None, Some(v)) => Some((v, Origin { key, file: path })),
        (None, None) => None,
    }
}

fn in_range<T>(v: T, origin: &Origin<'_>, lo: T, hi: T, unit: &str) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if v < lo || v > hi {
        return Err(ConfigError(format!(
            "{origin}: {v} is out of range; use {lo} to {hi}{unit}"
        )));
    }
    Ok(v)
}

pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

pub fn parse_source(s: &str) -> Option<SourceSpec> {
    let s = s.trim();
    if s == "testsrc" {
        Some(SourceSpec::TestPattern)
    } else if s.starts_with("/dev/") {
        Some(SourceSpec::Device(s.into()))
    } else if s.to_ascii_lowercase().ends_with(".y4m") {
        Some(SourceSpec::Y4m(s.into()))
    } else {
        None
    }
}

pub fn parse_listen(s: &str) -> Option<Option<SocketAddr>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return port
            .parse::<u16>()
            .ok()
            .map(|p| Some(SocketAddr::from(([127, 0, 0, 1], p))));
    }
    s.parse::<SocketAddr>().ok().map(Some)
}

fn parse_log_level(s: &str) -> Option<log::LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" | "warning" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        "off" => Some(log::LevelFilter::Off),
        _ => None,
    }
}

/// Checks a push URL's shape (the push sinks parse it fully).
fn check_push_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!("{url:?} is not a URL; use rtmp://host[:port]/app/stream or tcp://host:port/name")
    })?;
    if !matches!(scheme, "rtmp" | "tcp") {
        return Err(format!(
            "{url:?}: scheme {scheme}:// is not supported; use rtmp:// or tcp://"
        ));
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || path.trim_matches('/').is_empty() {
        return Err(format!(
            "{url:?} needs a host and a stream name, e.g. {scheme}://server/{}",
            if scheme == "rtmp" {
                "live/cam1"
            } else {
                "cam1"
            }
        ));
    }
    Ok(())
}

impl Config {
    /// Builds the configuration from parsed flags (reading `--config`).
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let (file, path) = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("--config {}: cannot read it: {e}", path.display()))
                })?;
                (Self::parse_file(&text, path)?, Some(path.as_path()))
            }
            None => (FileConfig::default(), None),
        };
        Self::merge(cli, file, path)
    }

    fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let msg = e.to_string();
            ConfigError(format!(
                "{}: {}",
                path.display(),
                msg.trim_end().replace('\n', "\n    ")
            ))
        })
    }

    /// Loads a config file alone (no flags), e.g. a board profile.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::load(&Cli {
            config: Some(path.into()),
            ..Cli::default()
        })
    }

    fn merge(cli: &Cli, file: FileConfig, path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut c = Config::default();
        if let Some((v, o)) = pick(cli.source.clone(), file.source, "source", path) {
            c.source = parse_source(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not a source; use testsrc, a V4L2 device such as /dev/video0, or a .y4m file"
                ))
            })?;
        }
        if let Some((v, o)) = pick(cli.size.clone(), file.size, "size", path) {
            let (w, h) = parse_size(&v).ok_or_else(|| {
                ConfigError(format!("{o}: {v:?} is not a size; write WxH, e.g. 640x480"))
            })?;
            if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) || w % 2 != 0 || h % 2 != 0 {
                return Err(ConfigError(format!(
                    "{o}: {w}x{h} is not usable; width and height must be even, from 16 to 4096"
                )));
            }
            (c.width, c.height) = (w, h);
        }
        if let Some((v, o)) = pick(cli.fps, file.fps, "fps", path) {
            c.fps = in_range(v, &o, 1, 120, " frames per second")?;
        }
        if let Some((v, o)) = pick(cli.bitrate, file.bitrate, "bitrate", path) {
            c.bitrate = in_range(v, &o, 16, 100_000, " kbit/s")?;
        }
        if let Some((v, o)) = pick(cli.keyint, file.keyint, "keyint", path) {
            if !v.is_finite() {
                return Err(ConfigError(format!("{o}: {v} is not a number of seconds")));
            }
            c.keyint = in_range(v, &o, 0.1, 60.0, " seconds")?;
        }
        if let Some((v, o)) = pick(cli.threads, file.threads, "threads", path) {
            c.threads = in_range(v, &o, 0, 64, " (0 = automatic)")?;
        }
        if let Some((v, o)) = pick(cli.rtsp.clone(), file.rtsp, "rtsp", path) {
            c.rtsp = parse_listen(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not an address; use ADDR:PORT (0.0.0.0:8554, 127.0.0.1:8554, [::]:8554) or off"
                ))
            })?;
        }
        if let Some((v, o)) = pick(cli.rtsp_path.clone(), file.rtsp_path, "rtsp-path", path) {
            let trimmed = v.trim_end_matches('/');
            let ok = v.starts_with('/')
                && trimmed.len() > 1
                && trimmed.len() <= 256
                && trimmed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
            if !ok {
                return Err(ConfigError(format!(
                    "{o}: {v:?} is not a stream path; use / followed by letters, digits, -_.~ and /, e.g. /live"
                )));
            }
            c.rtsp_path = trimmed.into();
        }
        let push = if cli.push.is_empty() {
            file.push.map(|p| {
                (
                    p,
                    Origin {
                        key: "push",
                        file: path,
                    },
                )
            })
        } else {
            Some((
                cli.push.clone(),
                Origin {
                    key: "push",
                    file: None,
                },
            ))
        };
        if let Some((urls, o)) = push {
            for url in &urls {
                check_push_url(url).map_err(|e| ConfigError(format!("{o}: {e}")))?;
            }
            c.push = urls;
        }
        if let Some((v, o)) = pick(cli.frames, file.frames, "frames", path) {
            c.frames = Some(in_range(v, &o, 1, u64::MAX, "")?);
        }
        if let Some((v, o)) = pick(cli.pace.clone(), file.pace, "pace", path) {
            c.pace = match v.trim() {
                "realtime" => Pace::Realtime,
                "asap" => Pace::Asap,
                _ => {
                    return Err(ConfigError(format!(
                        "{o}: {v:?} is not a pace; use realtime or asap"
                    )));
                }
            };
        }
        if let Some((v, o)) = pick(
            cli.rtp_payload_size,
            file.rtp_payload_size,
            "rtp-payload-size",
            path,
        ) {
            c.rtp_payload_size = in_range(v, &o, 256, 65_000, " bytes")?;
        }
        if let Some((v, o)) = pick(
            cli.session_timeout,
            file.session_timeout,
            "session-timeout",
            path,
        ) {
            c.session_timeout = in_range(v, &o, 5, 3600, " seconds")?;
        }
        if let Some((v, o)) = pick(cli.max_viewers, file.max_viewers, "max-viewers", path) {
            c.max_viewers = in_range(v, &o, 1, 1024, "")?;
        }
        if let Some((v, o)) = pick(cli.log_level.clone(), file.log_level, "log-level", path) {
            c.log_level = parse_log_level(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not a log level; use error, warn, info, debug or trace"
                ))
            })?;
        }
        if let Some((v, o)) = pick(
            cli.camera_format.clone(),
            file.camera_format,
            "camera-format",
            path,
        ) {
            let usable = crate::source::v4l2::negotiate::preference();
            c.camera_format = if v.trim().eq_ignore_ascii_case("auto") {
                None
            } else {
                let want = v.trim().to_ascii_uppercase();
                Some(
                    usable
                        .iter()
                        .copied()
                        .find(|p| p.fourcc() == want || (want == "I420" && p.fourcc() == "YU12"))
                        .ok_or_else(|| {
                            let names: Vec<&str> = usable.iter().map(|p| p.fourcc()).collect();
                            ConfigError(format!(
                                "{o}: {v:?} is not a camera format edgestream takes; use auto or one of {}",
                                names.join(", ")
                            ))
                        })?,
                )
            };
        }
        Ok(c)
    }

    /// The effective configuration as a config file.
    pub fn to_toml(&self) -> String {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.into(), v);
        };
        put("source", self.source.to_string().into());
        put("size", format!("{}x{}", self.width, self.height).into());
        put("fps", i64::from(self.fps).into());
        put("bitrate", i64::from(self.bitrate).into());
        put("keyint", self.keyint.into());
        put("threads", i64::from(self.threads).into());
        put(
            "rtsp",
            self.rtsp
                .map_or_else(|| "off".to_string(), |a| a.to_string())
                .into(),
        );
        put("rtsp-path", self.rtsp_path.clone().into());
        put(
            "push",
            toml::Value::Array(self.push.iter().map(|u| u.clone().into()).collect()),
        );
        if let Some(n) = self.frames {
            put("frames", (n.min(i64::MAX as u64) as i64).into());
        }
        put(
            "pace",
            match self.pace {
                Pace::Realtime => "realtime",
                Pace::Asap => "asap",
            }
            .into(),
        );
        put("rtp-payload-size", (self.rtp_payload_size as i64).into());
        put("session-timeout", (self.session_timeout as i64).into());
        put("max-viewers", (self.max_viewers as i64).into());
        put(
            "log-level",
            self.log_level.to_string().to_lowercase().into(),
        );
        put(
            "camera-format",
            self.camera_format.map_or("auto", |p| p.fourcc()).into(),
        );
        toml::to_string(&t).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["edgestream"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    fn from_toml(text: &str, args: &[&str]) -> Result<Config, ConfigError> {
        let path = Path::new("/etc/edgestream/edgestream.toml");
        let file = Config::parse_file(text, path)?;
        Config::merge(&cli(args), file, Some(path))
    }

    #[test]
    fn defaults() {
        let c = Config::load(&cli(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.rtsp.unwrap().port(), 8554);
    }

    #[test]
    fn flags_override_the_file() {
        let c = from_toml(
            "source = \"/dev/video2\"\nsize = \"1280x720\"\nfps = 15\nrtsp-path = \"/cam/\"\npush = [\"tcp://127.0.0.1:6666/cam1\"]\nkeyint = 1",
            &["--fps", "25", "--rtsp", "off"],
        )
        .unwrap();
        assert_eq!(c.source, SourceSpec::Device("/dev/video2".into()));
        assert_eq!((c.width, c.height, c.fps), (1280, 720, 25));
        assert_eq!(c.rtsp, None);
        assert_eq!(c.rtsp_path, "/cam");
        assert_eq!(c.push, vec!["tcp://127.0.0.1:6666/cam1"]);
        assert_eq!(c.keyint, 1.0);
    }

    #[test]
    fn errors_name_the_flag_or_key_and_the_fix() {
        let e = from_toml("fps = 500", &[]).unwrap_err().0;
        assert!(
            e.contains("`fps` in /etc/edgestream/edgestream.toml") && e.contains("1 to 120"),
            "{e}"
        );
        let e = from_toml("", &["--fps", "0"]).unwrap_err().0;
        assert!(e.starts_with("--fps: 0 is out of range"), "{e}");
        let e = from_toml("size = \"641x480\"", &[]).unwrap_err().0;
        assert!(e.contains("must be even"), "{e}");
        let e = from_toml("", &["--size", "big"]).unwrap_err().0;
        assert!(e.contains("--size") && e.contains("WxH"), "{e}");
        let e = from_toml("fpss = 3", &[]).unwrap_err().0;
        assert!(
            e.contains("unknown field `fpss`") && e.contains("fps"),
            "{e}"
        );
        let e = from_toml("fps = \"thirty\"", &[]).unwrap_err().0;
        assert!(e.contains("fps"), "{e}");
        let e = from_toml("", &["--rtsp", "8554"]).unwrap_err().0;
        assert!(e.contains("ADDR:PORT"), "{e}");
        let e = from_toml("", &["--source", "camera"]).unwrap_err().0;
        assert!(e.contains("/dev/video0"), "{e}");
        let e = from_toml("", &["--push", "http://x/y"]).unwrap_err().0;
        assert!(e.contains("rtmp://"), "{e}");
        let e = from_toml("", &["--push", "rtmp://server"]).unwrap_err().0;
        assert!(e.contains("stream name"), "{e}");
        let e = from_toml("", &["--rtsp-path", "live"]).unwrap_err().0;
        assert!(e.contains("/live"), "{e}");
        let e = from_toml("", &["--pace", "fast"]).unwrap_err().0;
        assert!(e.contains("realtime or asap"), "{e}");
        let e = from_toml("", &["--keyint", "NaN"]).unwrap_err().0;
        assert!(e.contains("--keyint"), "{e}");
        let e = from_toml("", &["--log-level", "loud"]).unwrap_err().0;
        assert!(e.contains("debug"), "{e}");
        let e = from_toml("camera-format = \"RGB3\"", &[]).unwrap_err().0;
        assert!(
            e.contains("`camera-format` in") && e.contains("auto or one of YU12, NV12, YUYV"),
            "{e}"
        );
        assert!(Cli::try_parse_from(["edgestream", "--fps", "x"]).is_err());
        assert!(Cli::try_parse_from(["edgestream", "--nope"]).is_err());
    }

    #[test]
    fn print_config_round_trips() {
        let c = from_toml(
            "",
            &[
                "--size",
                "320x240",
                "--push",
                "rtmp://h/app/s",
                "--frames",
                "9",
                "--rtsp",
                "127.0.0.1:0",
                "--camera-format",
                "yuyv",
            ],
        )
        .unwrap();
        assert_eq!(c.camera_format, Some(crate::media::PixelFormat::Yuyv));
        let text = c.to_toml();
        let back = from_toml(&text, &[]).unwrap();
        assert_eq!(back, c, "{text}");
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_size("320X240"), Some((320, 240)));
        assert_eq!(
            parse_source("clip.Y4M"),
            Some(SourceSpec::Y4m("clip.Y4M".into()))
        );
        assert_eq!(
            parse_listen("localhost:1"),
            Some(Some("127.0.0.1:1".parse().unwrap()))
        );
        assert_eq!(
            parse_listen("[::]:8554"),
            Some(Some("[::]:8554".parse().unwrap()))
        );
        assert_eq!(parse_listen("OFF"), Some(None));
    }
}
