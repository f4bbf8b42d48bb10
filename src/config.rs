//! One configuration, from a TOML file and command-line flags with the same
//! names (`--rtsp-path` and `rtsp-path = ...`); flags win. Every key has a
//! default. Validation names the flag or key at fault, what it got, and what
//! it takes.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::rtsp::auth::User;
use crate::source::Pace;

/// Connections one address may open beyond `max-viewers` by default.
pub const PER_IP_SPARE: usize = 8;

/// What `--print-config` prints instead of a password.
const HIDDEN: &str = ":<hidden>";

/// Reads an RTSP users file: `user:password` or htdigest `user:realm:md5`
/// lines; `#` comments and blank lines are skipped. The file must not be
/// readable by group or others: it holds secrets.
pub fn load_users_file(path: &Path) -> Result<Vec<User>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} is open to group or others (mode {mode:04o}); run `chmod 600 {shown}`"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            // Under the unit, systemd starts edgestream as its own user: the
            // file must belong to it (board/install.sh sees to that).
            format!(
                "cannot read {shown}: {e}; the user edgestream runs as must own it: \
                 `install -m 0600 -o edgestream -g edgestream FILE {shown}`"
            )
        } else {
            format!("cannot read {shown}: {e}")
        }
    })?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        users.push(User::parse(line).map_err(|e| format!("{shown} line {}: {e}", i + 1))?);
    }
    if users.is_empty() {
        return Err(format!("{shown} has no users"));
    }
    Ok(users)
}

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
        SIGUSR1 toggles the privacy pause (camera closed, viewers stay connected); \
        SIGHUP rereads the --config file.\n\n\
        Exit status: 0 on a clean stop (also SIGINT/SIGTERM, --frames, end of file), \
        1 on a runtime failure, 2 on bad usage or configuration."
)]
pub struct Cli {
    /// Read settings from this TOML file; flags given as well override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where frames come from: `testsrc` (built-in moving pattern), a V4L2 camera
    /// (/dev/videoN, /dev/v4l/by-id/...), a 4:2:0 .y4m file, `exec:COMMAND ARGS...`
    /// (a supervised child's stdout, e.g. rpicam-vid; no shell unless `sh -c`) or `-` (stdin).
    /// [default: testsrc]
    #[arg(long, value_name = "testsrc|/dev/videoN|FILE.y4m|exec:CMD|-")]
    pub source: Option<String>,

    /// What an exec: or stdin source sends: i420, nv12, yuyv (raw, at --size), y4m, h264
    /// (passed through) or mjpeg. [default: recognise y4m, h264 or mjpeg from the first bytes]
    #[arg(long, value_name = "FORMAT")]
    pub source_format: Option<String>,

    /// Bytes per luma line of raw exec:/stdin pictures, for producers that pad lines
    /// (rpicam-vid at odd widths). [default: the width, twice it for yuyv]
    #[arg(long, value_name = "BYTES")]
    pub source_stride: Option<usize>,

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

    /// x264 threads; 0 picks the fewest that keep encoding inside half the
    /// frame interval, measured as it runs. [default: 0]
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,

    /// Forced IDRs for joining viewers at once (one more per second); past
    /// that a viewer starts at the newest IDR with the frames since; 0 never
    /// forces one. [default: 2]
    #[arg(long, value_name = "N")]
    pub keyframe_burst: Option<u32>,

    /// RTSP server address, or `off`. [default: 0.0.0.0:8554]
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub rtsp: Option<String>,

    /// Path of the stream on the RTSP server. [default: /live]
    #[arg(long, value_name = "/PATH")]
    pub rtsp_path: Option<String>,

    /// HTTP server address (live page, /live.mp4, /api/status, /metrics,
    /// /snapshot.jpg), or `off`. Same users and limits as RTSP. [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub http: Option<String>,

    /// UDP address of WebRTC (WHEP, `POST /live/whep` on the HTTP face):
    /// one port for all peers, or `off`. Needs the `webrtc` build feature.
    /// [default: 0.0.0.0:8189]
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub webrtc_udp: Option<String>,

    /// More IP addresses to offer WebRTC peers as host candidates on the
    /// webrtc-udp port, for addresses the device cannot see itself (a NAT's
    /// public address). Repeat or separate with commas. [default: none]
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    pub webrtc_additional_hosts: Vec<String>,

    /// Serve /metrics without credentials (for a Prometheus scraper). [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_public: Option<bool>,

    /// Push the stream to a server: `rtmp://host[:port]/app[/instance]/stream[?query]`
    /// (RTMP publish), `rtmps://host[:443]/...` (RTMP over TLS) or `tcp://host:port/name`
    /// (raw FLV, name in onMetaData streamName).
    /// Repeat for several targets; each reconnects on its own: within 3 s for the first two minutes of an outage, then backing off to 30 s.
    #[arg(long, value_name = "URL")]
    pub push: Vec<String>,

    /// RTMPS: trust only the CA certificates in this PEM file (a private CA)
    /// instead of the system store (/etc/ssl/certs). [default: the system store]
    #[arg(long, value_name = "FILE")]
    pub push_tls_ca: Option<PathBuf>,

    /// Audio track on push targets: `off`, or `silent` (AAC-LC mono silence,
    /// for platforms that want audio, such as YouTube). [default: off]
    #[arg(long, value_name = "off|silent")]
    pub audio: Option<String>,

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

    /// An RTSP user allowed to watch; once any user is set, every RTSP request
    /// but OPTIONS needs credentials (Digest). Repeat for several users. Prefer
    /// --rtsp-users-file: command lines are visible to other local users.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub rtsp_user: Vec<String>,

    /// A file of RTSP users, one `user:password` or htdigest `user:edgestream:md5`
    /// per line; it must not be readable by group or others.
    #[arg(long, value_name = "FILE")]
    pub rtsp_users_file: Option<PathBuf>,

    /// Also accept Basic authentication (the password crosses the network in
    /// the clear; Digest is always offered). [default: false]
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub rtsp_basic_auth: Option<bool>,

    /// Most RTSP connections at once; more are answered 503 and closed. [default: 512]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most RTSP connections from one client address (an NVR, a proxy or a
    /// NAT'd office is one address). [default: max-viewers + 8, so 40]
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// Largest RTSP request header block in bytes; larger gets 400. [default: 8192]
    #[arg(long, value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,

    /// Requests per second one RTSP connection may make (bursts of twice that);
    /// more get 503. [default: 20]
    #[arg(long, value_name = "N")]
    pub max_requests_per_second: Option<u32>,

    /// Seconds a client has to send a complete request after connecting or
    /// starting one; slower ones get 408 and are closed. [default: 10]
    #[arg(long, value_name = "SECONDS")]
    pub handshake_timeout: Option<u64>,

    /// Seconds an RTSP connection without a session may stay idle. [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// UDP ports for RTP/RTCP over UDP, FIRST-LAST (e.g. 50000-50001), for a
    /// firewall rule; the server takes the first free even/odd pair in it.
    /// `auto`: a random pair. [default: auto]
    #[arg(long, value_name = "FIRST-LAST|auto")]
    pub rtsp_udp_ports: Option<String>,

    /// Status LED on a GPIO line: CHIP:LINE, e.g. gpiochip0:17 (a Raspberry Pi's
    /// BCM GPIO 17); append :active-low if the LED lights when the pin is low.
    /// [default: off]
    #[arg(long, value_name = "CHIP:LINE[:active-low]|off")]
    pub led: Option<String>,

    /// Privacy button on a GPIO line: each press pauses or resumes capture.
    /// CHIP:LINE, e.g. gpiochip0:27; append :active-low if pressing pulls the
    /// pin low. [default: off]
    #[arg(long, value_name = "CHIP:LINE[:active-low]|off")]
    pub button: Option<String>,
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
    source: Option<SourceValue>,
    source_format: Option<String>,
    source_stride: Option<usize>,
    size: Option<String>,
    fps: Option<u32>,
    bitrate: Option<u32>,
    keyint: Option<f64>,
    threads: Option<u32>,
    keyframe_burst: Option<u32>,
    rtsp: Option<String>,
    rtsp_path: Option<String>,
    http: Option<String>,
    webrtc_udp: Option<String>,
    webrtc_additional_hosts: Option<StringList>,
    metrics_public: Option<bool>,
    push: Option<PushList>,
    push_tls_ca: Option<PathBuf>,
    audio: Option<String>,
    frames: Option<u64>,
    pace: Option<String>,
    rtp_payload_size: Option<usize>,
    session_timeout: Option<u64>,
    max_viewers: Option<usize>,
    log_level: Option<String>,
    rtsp_user: Option<StringList>,
    rtsp_users_file: Option<PathBuf>,
    rtsp_basic_auth: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_request_bytes: Option<usize>,
    max_requests_per_second: Option<u32>,
    handshake_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    led: Option<String>,
    button: Option<String>,
    camera_format: Option<String>,
    rtsp_udp_ports: Option<String>,
}

/// `FIRST-LAST` (inclusive, holding an even port and the next) or `auto`
/// (`Some(None)`); `None` is malformed.
fn parse_port_range(s: &str) -> Option<Option<(u16, u16)>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("auto") {
        return Some(None);
    }
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let first_even = a.checked_add(a % 2)?;
    (a > 0 && first_even < b).then_some(Some((a, b)))
}

/// A key that takes one string or a list of strings (`rtsp-user`).
#[derive(Debug, Default, Clone)]
struct StringList(Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<StringList, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The closest of `candidates` to an unknown `key`, if it is close enough
/// to be a typo (at most a third of its letters differ).
pub fn did_you_mean<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    /// Edit distance with transpositions (optimal string alignment).
    fn distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = v;
            }
        }
        d[a.len()][b.len()]
    }
    candidates
        .into_iter()
        .map(|c| (distance(key, c), c))
        .filter(|&(d, c)| d <= (key.len().max(c.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Adds "did you mean" to serde's unknown-field message, which names the
/// field and lists the expected ones in backticks.
fn suggest_key(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    let key = rest.split('`').next()?;
    let expected = rest.split("expected one of ").nth(1)?;
    let names = expected.split('`').skip(1).step_by(2);
    did_you_mean(key, names).map(|m| format!("unknown key `{key}`: did you mean `{m}`?"))
}

/// The file's `push` key: a URL, a list of URLs, or `[[push]]` tables with
/// a `url` key (the two list forms may be mixed).
#[derive(Debug, Default)]
struct PushList(Vec<String>);

impl<'de> Deserialize<'de> for PushList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry(String);
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a push URL string, or a [[push]] table with url = \"rtmp://host/app/stream\"",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entry, A::Error> {
                use serde::de::Error;
                let mut url = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "url" if url.is_none() => url = Some(map.next_value::<String>()?),
                        "url" => {
                            return Err(A::Error::custom(
                                "`url` is given twice in one [[push]] table",
                            ));
                        }
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}` in a [[push]] table; the only key is `url`"
                            )));
                        }
                    }
                }
                url.map(Entry).ok_or_else(|| {
                    A::Error::custom(
                        "a [[push]] table needs url = \"rtmp://host/app/stream\" or \"tcp://host:port/name\"",
                    )
                })
            }
        }
        impl<'de> Deserialize<'de> for Entry {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(EntryVisitor)
            }
        }
        struct ListVisitor;
        impl<'de> serde::de::Visitor<'de> for ListVisitor {
            type Value = PushList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("push URLs: push = [\"rtmp://host/app/stream\"] or [[push]] tables with url = \"...\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PushList, E> {
                Ok(PushList(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PushList, A::Error> {
                let mut urls = Vec::new();
                while let Some(Entry(url)) = seq.next_element::<Entry>()? {
                    urls.push(url);
                }
                Ok(PushList(urls))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<PushList, A::Error> {
                let Entry(url) = EntryVisitor.visit_map(map)?;
                Ok(PushList(vec![url]))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// The file's `source` key: a string, or a command as a list of words
/// (`source = ["rpicam-vid", "-t", "0", "-o", "-"]`).
#[derive(Deserialize, Debug, Clone)]
#[serde(
    untagged,
    expecting = "a string such as \"/dev/video0\" or \"exec:rpicam-vid ...\", or a list of words of a command"
)]
enum SourceValue {
    One(String),
    Words(Vec<String>),
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    TestPattern,
    Device(PathBuf),
    Y4m(PathBuf),
    /// A child's stdout: the command and its arguments (never empty).
    Command(Vec<String>),
    /// Our stdin (`-`).
    Stdin,
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("testsrc"),
            Self::Device(p) | Self::Y4m(p) => write!(f, "{}", p.display()),
            Self::Command(words) => write!(f, "exec:{}", words.join(" ")),
            Self::Stdin => f.write_str("-"),
        }
    }
}

/// Splits a command line into words at blanks; `'...'` and `"..."` keep
/// blanks inside a word, `\\` escapes the next character (outside single
/// quotes). No other shell syntax: no variables, globs or pipes. `None`: an
/// unterminated quote.
pub fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// A command from a list of words; a leading `exec:` on the first is allowed.
fn command_words(words: Vec<String>) -> Option<SourceSpec> {
    let mut words: Vec<String> = words.into_iter().filter(|w| !w.is_empty()).collect();
    if let Some(rest) = words.first().and_then(|w| w.strip_prefix("exec:")) {
        let rest = rest.trim().to_string();
        if rest.is_empty() {
            words.remove(0);
        } else {
            words[0] = rest;
        }
    }
    (!words.is_empty()).then_some(SourceSpec::Command(words))
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
    pub keyframe_burst: u32,
    /// `None`: the RTSP server is off.
    pub rtsp: Option<SocketAddr>,
    pub rtsp_path: String,
    /// `None`: the HTTP server is off.
    pub http: Option<SocketAddr>,
    /// `None`: WebRTC is off.
    pub webrtc_udp: Option<SocketAddr>,
    pub webrtc_additional_hosts: Vec<std::net::IpAddr>,
    pub metrics_public: bool,
    pub push: Vec<String>,
    pub push_tls_ca: Option<PathBuf>,
    pub audio: crate::push::Audio,
    pub frames: Option<u64>,
    pub pace: Pace,
    pub rtp_payload_size: usize,
    pub session_timeout: u64,
    pub max_viewers: usize,
    pub log_level: log::LevelFilter,
    /// Users from `rtsp-user` (in order), then from `rtsp-users-file`.
    pub rtsp_users: Vec<User>,
    /// How many of `rtsp_users` came from `rtsp-user` (printed masked).
    pub rtsp_user_entries: usize,
    pub rtsp_users_file: Option<PathBuf>,
    pub rtsp_basic_auth: bool,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_request_bytes: usize,
    pub max_requests_per_second: u32,
    pub handshake_timeout: u64,
    pub idle_timeout: u64,
    /// The status LED, if any.
    pub led: Option<GpioLine>,
    /// The privacy button, if any.
    pub button: Option<GpioLine>,
    /// A camera pixel format to insist on; `None` picks the best.
    pub camera_format: Option<crate::media::PixelFormat>,
    /// The range the RTP/RTCP UDP pair is taken from; `None`: random.
    pub rtsp_udp_ports: Option<(u16, u16)>,
    /// What an exec:/stdin source sends; `None`: recognised from its first bytes.
    pub source_format: Option<crate::source::command::StreamFormat>,
    /// Luma line stride of raw exec:/stdin pictures; `None`: tightly packed.
    pub source_stride: Option<usize>,
}

/// A GPIO line on a Linux GPIO character device (`/dev/gpiochipN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioLine {
    pub chip: PathBuf,
    pub line: u32,
    /// The active state is a low level: an LED wired from 3.3 V to the pin,
    /// or a button that pulls the pin to ground.
    pub active_low: bool,
}

impl fmt::Display for GpioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.chip.display(), self.line)?;
        if self.active_low {
            f.write_str(":active-low")?;
        }
        Ok(())
    }
}

/// Parses `CHIP:LINE[:active-low]` (CHIP: `gpiochipN` or a `/dev/...` path)
/// or `off`; `Some(None)` is off, `None` is malformed.
pub fn parse_gpio_line(s: &str) -> Option<Option<GpioLine>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    let mut parts = s.split(':');
    let chip = parts.next()?;
    let line = parts.next()?.trim().parse::<u32>().ok()?;
    let active_low = match parts.next() {
        None => false,
        Some(flag) if flag.eq_ignore_ascii_case("active-low") => true,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    let chip = if chip.starts_with("/dev/") && chip.len() > 5 {
        PathBuf::from(chip)
    } else if chip.starts_with("gpiochip") && chip[8..].parse::<u32>().is_ok() {
        Path::new("/dev").join(chip)
    } else {
        return None;
    };
    Some(Some(GpioLine {
        chip,
        line,
        active_low,
    }))
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
            keyframe_burst: 2,
            rtsp: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8554))),
            rtsp_path: "/live".into(),
            http: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080))),
            webrtc_udp: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8189))),
            webrtc_additional_hosts: Vec::new(),
            metrics_public: false,
            push: Vec::new(),
            push_tls_ca: None,
            audio: crate::push::Audio::Off,
            frames: None,
            pace: Pace::Realtime,
            rtp_payload_size: 1400,
            session_timeout: 60,
            max_viewers: 32,
            log_level: log::LevelFilter::Info,
            rtsp_users: Vec::new(),
            rtsp_user_entries: 0,
            rtsp_users_file: None,
            rtsp_basic_auth: false,
            max_connections: 512,
            max_connections_per_ip: 32 + PER_IP_SPARE,
            max_request_bytes: 8192,
            max_requests_per_second: 20,
            handshake_timeout: 10,
            idle_timeout: 30,
            led: None,
            button: None,
            camera_format: None,
            rtsp_udp_ports: None,
            source_format: None,
            source_stride: None,
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
    } else if s == "-" {
        Some(SourceSpec::Stdin)
    } else if let Some(cmd) = s.strip_prefix("exec:") {
        command_words(split_words(cmd)?)
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

fn parse_gpio(v: &str, o: &Origin<'_>) -> Result<Option<GpioLine>, ConfigError> {
    parse_gpio_line(v).ok_or_else(|| {
        ConfigError(format!(
            "{o}: {v:?} is not a GPIO line; use CHIP:LINE with an optional :active-low, \
             e.g. gpiochip0:17 or /dev/gpiochip0:17:active-low, or off"
        ))
    })
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

/// Checks a push URL fully (the same parser the push targets use).
fn check_push_url(url: &str) -> Result<(), String> {
    crate::push::PushTarget::parse(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
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
            let mut msg = e.to_string();
            if let Some(hint) = suggest_key(&msg) {
                msg = format!("{hint}\n{msg}");
            }
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
        Self::merge_rtsp_access(&mut c, cli, &file, path)?;
        let flag = cli.source.clone().map(SourceValue::One);
        if let Some((v, o)) = pick(flag, file.source.clone(), "source", path) {
            c.source = match v {
                SourceValue::One(v) => parse_source(&v).ok_or_else(|| {
                    ConfigError(format!(
                        "{o}: {v:?} is not a source; use testsrc, a V4L2 device such as /dev/video0, a .y4m file, exec:COMMAND ARGS... or - (stdin)"
                    ))
                })?,
                SourceValue::Words(w) => command_words(w).ok_or_else(|| {
                    ConfigError(format!(
                        "{o}: an empty command; write the command and its arguments, e.g. [\"rpicam-vid\", \"-t\", \"0\", \"-o\", \"-\"]"
                    ))
                })?,
            };
        }
        Self::merge_command_source(&mut c, cli, &file, path)?;
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
        if let Some((v, o)) = pick(
            cli.keyframe_burst,
            file.keyframe_burst,
            "keyframe-burst",
            path,
        ) {
            c.keyframe_burst = in_range(v, &o, 0, 100, " forced keyframes")?;
        }
        if let Some((v, o)) = pick(cli.rtsp.clone(), file.rtsp, "rtsp", path) {
            c.rtsp = parse_listen(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not an address; use ADDR:PORT (0.0.0.0:8554, 127.0.0.1:8554, [::]:8554) or off"
                ))
            })?;
        }
        if let Some((v, o)) = pick(cli.http.clone(), file.http, "http", path) {
            c.http = parse_listen(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not an address; use ADDR:PORT (0.0.0.0:8080, 127.0.0.1:8080, [::]:8080) or off"
                ))
            })?;
        }
        if let Some((v, o)) = pick(cli.webrtc_udp.clone(), file.webrtc_udp, "webrtc-udp", path) {
            c.webrtc_udp = parse_listen(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not an address; use ADDR:PORT (0.0.0.0:8189, 127.0.0.1:8189, [::]:8189) or off"
                ))
            })?;
        }
        let hosts = if cli.webrtc_additional_hosts.is_empty() {
            file.webrtc_additional_hosts.map(|l| (l.0, path))
        } else {
            Some((cli.webrtc_additional_hosts.clone(), None))
        };
        if let Some((hosts, file)) = hosts {
            let o = Origin {
                key: "webrtc-additional-hosts",
                file,
            };
            c.webrtc_additional_hosts = hosts
                .iter()
                .map(|h| {
                    h.trim().parse().map_err(|_| {
                        ConfigError(format!(
                            "{o}: {h:?} is not an IP address; give the address peers reach the device at (203.0.113.7, 2001:db8::7)"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some((v, _)) = pick(
            cli.metrics_public,
            file.metrics_public,
            "metrics-public",
            path,
        ) {
            c.metrics_public = v;
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
                    p.0,
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
        if let Some((v, o)) = pick(
            cli.push_tls_ca.clone(),
            file.push_tls_ca,
            "push-tls-ca",
            path,
        ) {
            if let Err(e) = std::fs::metadata(&v) {
                return Err(ConfigError(format!(
                    "{o}: cannot read {}: {e}; give a PEM file with the CA certificate",
                    v.display()
                )));
            }
            c.push_tls_ca = Some(v);
        }
        if let Some((v, o)) = pick(cli.audio.clone(), file.audio, "audio", path) {
            c.audio = match v.trim() {
                "off" => crate::push::Audio::Off,
                "silent" => crate::push::Audio::Silent,
                _ => {
                    return Err(ConfigError(format!(
                        "{o}: {v:?} is not an audio mode; use off or silent"
                    )));
                }
            };
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
        if cli.max_connections_per_ip.is_none() && file.max_connections_per_ip.is_none() {
            // Never below what one legitimate client may use: every viewer
            // slot, plus spare connections for DESCRIBE probes and retries.
            c.max_connections_per_ip = c.max_viewers + PER_IP_SPARE;
        }
        if let Some((v, o)) = pick(cli.log_level.clone(), file.log_level, "log-level", path) {
            c.log_level = parse_log_level(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not a log level; use error, warn, info, debug or trace"
                ))
            })?;
        }
        if let Some((v, o)) = pick(cli.led.clone(), file.led, "led", path) {
            c.led = parse_gpio(&v, &o)?;
        }
        if let Some((v, o)) = pick(cli.button.clone(), file.button, "button", path) {
            c.button = parse_gpio(&v, &o)?;
            if let (Some(led), Some(button)) = (&c.led, &c.button) {
                if (&led.chip, led.line) == (&button.chip, button.line) {
                    return Err(ConfigError(format!(
                        "{o}: {v:?} is the LED's line too; give the button a line of its own"
                    )));
                }
            }
        }
        if let Some((v, o)) = pick(
            cli.rtsp_udp_ports.clone(),
            file.rtsp_udp_ports.clone(),
            "rtsp-udp-ports",
            path,
        ) {
            c.rtsp_udp_ports = parse_port_range(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{o}: {v:?} is not a port range; write FIRST-LAST with room for an even \
                     port and the next one, e.g. 50000-50001, or auto"
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

    /// The RTSP users and connection limits (issue: the network face).
    fn merge_rtsp_access(
        c: &mut Config,
        cli: &Cli,
        file: &FileConfig,
        path: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let users = if cli.rtsp_user.is_empty() {
            file.rtsp_user.clone().map(|u| {
                (
                    u.0,
                    Origin {
                        key: "rtsp-user",
                        file: path,
                    },
                )
            })
        } else {
            Some((
                cli.rtsp_user.clone(),
                Origin {
                    key: "rtsp-user",
                    file: None,
                },
            ))
        };
        if let Some((entries, o)) = users {
            for e in &entries {
                if e.ends_with(HIDDEN) {
                    return Err(ConfigError(format!(
                        "{o}: the password in {e:?} was hidden by --print-config; write the real one"
                    )));
                }
                let user = User::parse(e).map_err(|why| ConfigError(format!("{o}: {why}")))?;
                c.rtsp_users.push(user);
            }
            c.rtsp_user_entries = entries.len();
        }
        if let Some((v, o)) = pick(
            cli.rtsp_users_file.clone(),
            file.rtsp_users_file.clone(),
            "rtsp-users-file",
            path,
        ) {
            // A relative path in the file is the file's neighbour (e.g.
            // `rtsp-users-file = "users"` beside /etc/edgestream/edgestream.toml);
            // on the command line it is relative to the working directory.
            let v = match path.and_then(Path::parent) {
                Some(dir) if cli.rtsp_users_file.is_none() && v.is_relative() => dir.join(v),
                _ => v,
            };
            c.rtsp_users
                .extend(load_users_file(&v).map_err(|e| ConfigError(format!("{o}: {e}")))?);
            c.rtsp_users_file = Some(v);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = c.rtsp_users.iter().find(|u| !seen.insert(u.name.clone())) {
            return Err(ConfigError(format!(
                "RTSP user {:?} is defined twice (rtsp-user and rtsp-users-file); keep one",
                dup.name
            )));
        }
        if let Some((v, _)) = pick(
            cli.rtsp_basic_auth,
            file.rtsp_basic_auth,
            "rtsp-basic-auth",
            path,
        ) {
            c.rtsp_basic_auth = v;
        }
        if let Some((v, o)) = pick(
            cli.max_connections,
            file.max_connections,
            "max-connections",
            path,
        ) {
            c.max_connections = in_range(v, &o, 1, 65_536, "")?;
        }
        if let Some((v, o)) = pick(
            cli.max_connections_per_ip,
            file.max_connections_per_ip,
            "max-connections-per-ip",
            path,
        ) {
            c.max_connections_per_ip = in_range(v, &o, 1, 65_536, "")?;
        }
        if let Some((v, o)) = pick(
            cli.max_request_bytes,
            file.max_request_bytes,
            "max-request-bytes",
            path,
        ) {
            c.max_request_bytes = in_range(v, &o, 1024, 65_536, " bytes")?;
        }
        if let Some((v, o)) = pick(
            cli.max_requests_per_second,
            file.max_requests_per_second,
            "max-requests-per-second",
            path,
        ) {
            c.max_requests_per_second = in_range(v, &o, 1, 10_000, "")?;
        }
        if let Some((v, o)) = pick(
            cli.handshake_timeout,
            file.handshake_timeout,
            "handshake-timeout",
            path,
        ) {
            c.handshake_timeout = in_range(v, &o, 1, 600, " seconds")?;
        }
        if let Some((v, o)) = pick(cli.idle_timeout, file.idle_timeout, "idle-timeout", path) {
            c.idle_timeout = in_range(v, &o, 1, 3600, " seconds")?;
        }
        Ok(())
    }

    /// `source-format` and `source-stride` (after `size` is known, they are
    /// checked again when the source opens).
    fn merge_command_source(
        c: &mut Config,
        cli: &Cli,
        file: &FileConfig,
        path: Option<&Path>,
    ) -> Result<(), ConfigError> {
        use crate::source::command::StreamFormat;
        let fmt = pick(
            cli.source_format.clone(),
            file.source_format.clone(),
            "source-format",
            path,
        );
        if let Some((v, o)) = fmt {
            c.source_format = if v.trim().eq_ignore_ascii_case("auto") {
                None
            } else {
                Some(StreamFormat::parse(&v).ok_or_else(|| {
                    ConfigError(format!(
                        "{o}: {v:?} is not a stream format; use auto or {}",
                        StreamFormat::NAMES
                    ))
                })?)
            };
        }
        if let Some((v, o)) = pick(cli.source_stride, file.source_stride, "source-stride", path) {
            c.source_stride = Some(in_range(v, &o, 16, 32_768, " bytes")?);
        }
        let commandish = matches!(c.source, SourceSpec::Command(_) | SourceSpec::Stdin);
        if !commandish && (c.source_format.is_some() || c.source_stride.is_some()) {
            return Err(ConfigError(
                "source-format and source-stride apply to exec: and - (stdin) sources only; remove them or set source = \"exec:...\"".into(),
            ));
        }
        Ok(())
    }

    /// The effective configuration as a config file.
    pub fn to_toml(&self) -> String {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.into(), v);
        };
        put(
            "source",
            match &self.source {
                SourceSpec::Command(w)
                    if w.iter().any(|w| {
                        w.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c))
                    }) =>
                {
                    toml::Value::Array(w.iter().map(|w| w.clone().into()).collect())
                }
                s => s.to_string().into(),
            },
        );
        if let Some(f) = self.source_format {
            put("source-format", f.name().into());
        }
        if let Some(n) = self.source_stride {
            put("source-stride", (n as i64).into());
        }
        put("size", format!("{}x{}", self.width, self.height).into());
        put("fps", i64::from(self.fps).into());
        put("bitrate", i64::from(self.bitrate).into());
        put("keyint", self.keyint.into());
        put("threads", i64::from(self.threads).into());
        put("keyframe-burst", i64::from(self.keyframe_burst).into());
        put(
            "rtsp",
            self.rtsp
                .map_or_else(|| "off".to_string(), |a| a.to_string())
                .into(),
        );
        put("rtsp-path", self.rtsp_path.clone().into());
        put(
            "http",
            self.http
                .map_or_else(|| "off".to_string(), |a| a.to_string())
                .into(),
        );
        put(
            "webrtc-udp",
            self.webrtc_udp
                .map_or_else(|| "off".to_string(), |a| a.to_string())
                .into(),
        );
        put(
            "webrtc-additional-hosts",
            toml::Value::Array(
                self.webrtc_additional_hosts
                    .iter()
                    .map(|h| h.to_string().into())
                    .collect(),
            ),
        );
        put("metrics-public", self.metrics_public.into());
        put(
            "push",
            toml::Value::Array(self.push.iter().map(|u| u.clone().into()).collect()),
        );
        if let Some(f) = &self.push_tls_ca {
            put("push-tls-ca", f.display().to_string().into());
        }
        put(
            "audio",
            match self.audio {
                crate::push::Audio::Off => "off",
                crate::push::Audio::Silent => "silent",
            }
            .into(),
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
            "rtsp-user",
            toml::Value::Array(
                self.rtsp_users[..self.rtsp_user_entries]
                    .iter()
                    .map(|u| format!("{}{HIDDEN}", u.name).into())
                    .collect(),
            ),
        );
        if let Some(f) = &self.rtsp_users_file {
            put("rtsp-users-file", f.display().to_string().into());
        }
        put("rtsp-basic-auth", self.rtsp_basic_auth.into());
        put("max-connections", (self.max_connections as i64).into());
        put(
            "max-connections-per-ip",
            (self.max_connections_per_ip as i64).into(),
        );
        put("max-request-bytes", (self.max_request_bytes as i64).into());
        put(
            "max-requests-per-second",
            i64::from(self.max_requests_per_second).into(),
        );
        put("handshake-timeout", (self.handshake_timeout as i64).into());
        put("idle-timeout", (self.idle_timeout as i64).into());
        let gpio = |g: &Option<GpioLine>| g.as_ref().map_or("off".into(), |g| g.to_string());
        put("led", gpio(&self.led).into());
        put("button", gpio(&self.button).into());
        put(
            "camera-format",
            self.camera_format.map_or("auto", |p| p.fourcc()).into(),
        );
        put(
            "rtsp-udp-ports",
            self.rtsp_udp_ports
                .map_or_else(|| "auto".to_string(), |(a, b)| format!("{a}-{b}"))
                .into(),
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
    fn udp_port_ranges() {
        let c = from_toml("rtsp-udp-ports = \"50000-50001\"", &[]).unwrap();
        assert_eq!(c.rtsp_udp_ports, Some((50000, 50001)));
        assert!(c.to_toml().contains("rtsp-udp-ports = \"50000-50001\""));
        let c = from_toml(
            "rtsp-udp-ports = \"50000-50001\"",
            &["--rtsp-udp-ports", "auto"],
        );
        assert_eq!(c.unwrap().rtsp_udp_ports, None);
        for bad in ["50001-50002", "5-", "x", "60000-50000", "0-1"] {
            let e = from_toml(&format!("rtsp-udp-ports = {bad:?}"), &[])
                .unwrap_err()
                .0;
            assert!(
                e.contains("`rtsp-udp-ports`") && e.contains("FIRST-LAST"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let e = from_toml("fsp = 10", &[]).unwrap_err().0;
        assert!(e.contains("unknown key `fsp`: did you mean `fps`?"), "{e}");
        let e = from_toml("max-viewer = 10", &[]).unwrap_err().0;
        assert!(e.contains("did you mean `max-viewers`?"), "{e}");
        let e = from_toml("frobnicate = 1", &[]).unwrap_err().0;
        assert!(!e.contains("did you mean"), "{e}");
        assert!(e.contains("unknown field `frobnicate`"), "{e}");
        assert_eq!(
            did_you_mean("rtsp-pth", ["rtsp", "rtsp-path"]),
            Some("rtsp-path")
        );
    }

    #[test]
    fn rtsp_user_takes_a_string_or_a_list() {
        let one = from_toml("rtsp-user = \"alice:pw\"", &[]).unwrap();
        assert_eq!(one.rtsp_users.len(), 1);
        let two = from_toml("rtsp-user = [\"alice:pw\", \"bob:pw\"]", &[]).unwrap();
        assert_eq!(two.rtsp_users.len(), 2);
        let e = from_toml("rtsp-user = 3", &[]).unwrap_err().0;
        assert!(e.contains("a string or a list of strings"), "{e}");
    }

    #[test]
    fn a_relative_users_file_is_beside_the_config_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("edgestream-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let users = dir.join("users");
        std::fs::write(&users, "alice:secret\n").unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
        let conf = dir.join("edgestream.toml");
        std::fs::write(&conf, "rtsp-users-file = \"users\"\n").unwrap();
        let c = Config::from_file(&conf).unwrap();
        assert_eq!(c.rtsp_users.len(), 1);
        assert_eq!(c.rtsp_users_file.as_deref(), Some(users.as_path()));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_per_address_limit_follows_max_viewers_unless_set() {
        let c = from_toml("max-viewers = 100", &[]).unwrap();
        assert_eq!(c.max_connections_per_ip, 100 + PER_IP_SPARE);
        let c = from_toml("max-viewers = 100", &["--max-connections-per-ip", "4"]).unwrap();
        assert_eq!(c.max_connections_per_ip, 4);
        assert!(Config::default().max_connections_per_ip > Config::default().max_viewers);
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
        let e = from_toml("led = \"gpio17\"", &[]).unwrap_err().0;
        assert!(
            e.contains("`led` in") && e.contains("gpiochip0:17") && e.contains("off"),
            "{e}"
        );
        let e = from_toml("", &["--button", "gpiochip0:27:inverted"])
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("--button:") && e.contains(":active-low"),
            "{e}"
        );
        let e = from_toml("led = \"gpiochip0:17\"", &["--button", "/dev/gpiochip0:17"])
            .unwrap_err()
            .0;
        assert!(e.contains("the LED's line"), "{e}");
        let e = from_toml("camera-format = \"RGB3\"", &[]).unwrap_err().0;
        assert!(
            e.contains("`camera-format` in") && e.contains("auto or one of YU12, NV12, YUYV"),
            "{e}"
        );
        assert!(Cli::try_parse_from(["edgestream", "--fps", "x"]).is_err());
        assert!(Cli::try_parse_from(["edgestream", "--nope"]).is_err());
    }

    #[test]
    fn push_takes_strings_and_tables() {
        let c = from_toml(
            "push = [\"rtmp://127.0.0.1/live/a\", { url = \"tcp://127.0.0.1:6666/b\" }]",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.push,
            vec!["rtmp://127.0.0.1/live/a", "tcp://127.0.0.1:6666/b"]
        );
        let c = from_toml(
            "fps = 10\n[[push]]\nurl = \"rtmp://h/live/x?key=1\"\n[[push]]\nurl = \"tcp://h:6666/y\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.push, vec!["rtmp://h/live/x?key=1", "tcp://h:6666/y"]);
        assert_eq!(c.fps, 10);
        let c = from_toml("push = \"rtmp://h/live/x\"", &[]).unwrap();
        assert_eq!(c.push, vec!["rtmp://h/live/x"]);
        // Flags replace the file's list.
        let c = from_toml("push = [\"rtmp://h/live/x\"]", &["--push", "tcp://h:1/z"]).unwrap();
        assert_eq!(c.push, vec!["tcp://h:1/z"]);

        let e = from_toml("[[push]]\nurl = \"rtmp://h/live/x\"\nkey = 3\n", &[])
            .unwrap_err()
            .0;
        assert!(
            e.contains("unknown key `key`") && e.contains("`url`"),
            "{e}"
        );
        let e = from_toml("[[push]]\nname = \"x\"\n", &[]).unwrap_err().0;
        assert!(e.contains("unknown key `name`"), "{e}");
        let e = from_toml("[[push]]\n", &[]).unwrap_err().0;
        assert!(e.contains("needs url ="), "{e}");
        let e = from_toml("push = [3]", &[]).unwrap_err().0;
        assert!(e.contains("push URL string"), "{e}");
        let e = from_toml("[[push]]\nurl = \"tcp://h/x\"\n", &[])
            .unwrap_err()
            .0;
        assert!(
            e.contains("`push` in /etc/edgestream/edgestream.toml") && e.contains("needs a port"),
            "{e}"
        );
        let e = from_toml("", &["--push", "rtmp://h/live"]).unwrap_err().0;
        assert!(
            e.starts_with("--push: ") && e.contains("stream name"),
            "{e}"
        );
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
                "--push",
                "tcp://127.0.0.1:6666/cam?x=1",
                "--frames",
                "9",
                "--rtsp",
                "127.0.0.1:0",
                "--led",
                "gpiochip0:17:active-low",
                "--button",
                "/dev/gpiochip1:4",
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
    fn rtsp_users_from_flags_and_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let c = from_toml("rtsp-user = [\"viewer:pw\"]", &["--rtsp-basic-auth"]).unwrap();
        assert_eq!(c.rtsp_users.len(), 1);
        assert!(c.rtsp_basic_auth);
        let printed = c.to_toml();
        assert!(
            printed.contains("rtsp-user = [\"viewer:<hidden>\"]"),
            "{printed}"
        );
        assert!(!printed.contains("pw\""));
        let e = from_toml(&printed, &[]).unwrap_err().0;
        assert!(e.contains("hidden by --print-config"), "{e}");

        let dir = std::env::temp_dir().join(format!("edgestream-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("users");
        std::fs::write(
            &f,
            "# viewers\nalice:pa:ss\n\nbob:edgestream:0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fs = f.to_str().unwrap();
        let e = from_toml("", &["--rtsp-users-file", fs]).unwrap_err().0;
        assert!(
            e.contains("--rtsp-users-file") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = from_toml("", &["--rtsp-users-file", fs, "--rtsp-user", "carol:x"]).unwrap();
        let names: Vec<&str> = c.rtsp_users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["carol", "alice", "bob"]);
        let e = from_toml("", &["--rtsp-users-file", fs, "--rtsp-user", "alice:x"])
            .unwrap_err()
            .0;
        assert!(e.contains("defined twice"), "{e}");
        std::fs::write(&f, "alice\n").unwrap();
        let e = from_toml("", &["--rtsp-users-file", fs]).unwrap_err().0;
        assert!(e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = from_toml("", &["--rtsp-user", "nopassword"]).unwrap_err().0;
        assert!(e.starts_with("--rtsp-user:"), "{e}");
    }

    #[test]
    fn limits() {
        let c = from_toml(
            "max-connections = 100\nidle-timeout = 5",
            &["--max-requests-per-second", "3"],
        )
        .unwrap();
        assert_eq!(
            (c.max_connections, c.idle_timeout, c.max_requests_per_second),
            (100, 5, 3)
        );
        let e = from_toml("max-request-bytes = 10", &[]).unwrap_err().0;
        assert!(e.contains("1024 to 65536"), "{e}");
    }

    #[test]
    fn command_sources_parse_from_a_string_or_a_list() {
        assert_eq!(
            parse_source("exec:sh -c \"ffmpeg -i 'a b'\" x\\ y"),
            Some(SourceSpec::Command(vec![
                "sh".into(),
                "-c".into(),
                "ffmpeg -i 'a b'".into(),
                "x y".into()
            ]))
        );
        assert_eq!(parse_source("exec:"), None);
        assert_eq!(parse_source("exec:sh -c \"x"), None);
        assert_eq!(parse_source("-"), Some(SourceSpec::Stdin));
        let c = from_toml(
            "source = [\"rpicam-vid\", \"-t\", \"0\", \"-o\", \"-\"]\nsource-format = \"h264\"",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.source,
            SourceSpec::Command(
                ["rpicam-vid", "-t", "0", "-o", "-"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(
            c.source_format,
            Some(crate::source::command::StreamFormat::H264)
        );
        let again = from_toml(&c.to_toml(), &[]).unwrap();
        assert_eq!(again, c);
        let e = from_toml("source = \"testsrc\"\nsource-stride = 2048", &[])
            .unwrap_err()
            .0;
        assert!(e.contains("exec:"), "{e}");
        let e = from_toml("source = \"-\"\nsource-format = \"rgb\"", &[])
            .unwrap_err()
            .0;
        assert!(
            e.contains("`source-format` in") && e.contains("i420"),
            "{e}"
        );
        let e = from_toml("source = []", &[]).unwrap_err().0;
        assert!(e.contains("empty command"), "{e}");
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
        assert_eq!(
            parse_gpio_line("gpiochip0:17:active-low"),
            Some(Some(GpioLine {
                chip: "/dev/gpiochip0".into(),
                line: 17,
                active_low: true
            }))
        );
        let g = parse_gpio_line("/dev/gpiochip4:27").unwrap().unwrap();
        assert_eq!(
            (g.chip.to_str(), g.line, g.active_low),
            (Some("/dev/gpiochip4"), 27, false)
        );
        assert_eq!(g.to_string(), "/dev/gpiochip4:27");
        assert_eq!(parse_gpio_line("off"), Some(None));
        for bad in [
            "",
            "gpiochip0",
            "gpiochip0:",
            "gpiochip0:x",
            "chip0:1",
            "/dev/:1",
            "gpiochip:1",
            "gpiochip0:1:low",
            "gpiochip0:1:active-low:x",
            "gpiochip0:-1",
        ] {
            assert_eq!(parse_gpio_line(bad), None, "{bad}");
        }
    }
}
