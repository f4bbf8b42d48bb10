//! The table of config keys: each key once, with its name (the flag
//! without dashes and the config-file key), flag type, file type, effective
//! type and default, `--help` text (the doc comment), how reload applies it,
//! its README row, how a value is read and checked, and how `--print-config`
//! prints it. Adding a key is adding an entry here (and its README row,
//! which `tests::readme_lists_exactly_the_keys` checks).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use super::read::*;
use super::table::{Apply, FlagValue, Key, Origin, keys};
use super::values::*;
use super::{ConfigError, HIDDEN, PER_IP_SPARE};
use crate::media::PixelFormat;
use crate::push::Audio;
use crate::rtsp::auth::User;
use crate::source::Pace;
use crate::source::command::StreamFormat;

keys! {
    /// Where frames come from: `testsrc` (built-in moving pattern), a V4L2 camera
    /// (/dev/videoN, /dev/v4l/by-id/...), a 4:2:0 .y4m file, `exec:COMMAND ARGS...`
    /// (a supervised child's stdout, e.g. rpicam-vid; no shell unless `sh -c`) or `-` (stdin).
    /// [default: testsrc]
    #[arg(value_name = "testsrc|/dev/videoN|FILE.y4m|exec:CMD|-")]
    source: "source", Option<String> => SourceValue => SourceSpec = SourceSpec::TestPattern;
        reload Pipeline; readme r#"`testsrc`"#,
            r#"Where frames come from: `testsrc` (the built-in pattern), a V4L2 camera (`/dev/videoN`, or a stable `/dev/v4l/by-id/...` name; see [Cameras](#cameras)), a 4:2:0 `.y4m` file, `exec:COMMAND ARGS...` (pictures from a supervised child's stdout, e.g. `rpicam-vid`; no shell unless you write `sh -c`; in the file also a list of words) or `-` (stdin); see [Command sources](#command-sources). A camera or command that is missing or fails is retried, not fatal."#;
        read read_source;
        print |s| Some(print_source(s));

    /// What an exec: or stdin source sends: i420, nv12, yuyv (raw, at --size), y4m, h264
    /// (passed through) or mjpeg. [default: recognise y4m, h264 or mjpeg from the first bytes]
    #[arg(value_name = "FORMAT")]
    source_format: "source-format", Option<String> => String => Option<StreamFormat> = None;
        reload Pipeline; readme r#"`auto`"#,
            r#"What an `exec:` or `-` source sends: `i420`, `nv12`, `yuyv` (raw, at `--size`), `y4m`, `h264` (passed through, no x264) or `mjpeg`. `auto` recognises y4m, H.264 and MJPEG from the first bytes; raw pictures need it set."#;
        read read_stream_format;
        print |f| f.map(|f| f.name().into());

    /// Bytes per luma line of raw exec:/stdin pictures, for producers that pad lines
    /// (rpicam-vid at odd widths). [default: the width, twice it for yuyv]
    #[arg(value_name = "BYTES")]
    source_stride: "source-stride", Option<usize> => usize => Option<usize> = None;
        reload Pipeline; readme r#"the width (twice it for `yuyv`)"#,
            r#"Bytes per luma line of raw `exec:`/`-` pictures, 16–32768, for producers that pad lines (rpicam-vid at widths such as 2028); chroma lines are half as long for `i420`."#;
        read |v, o| in_range(v, o, 16, 32_768, " bytes").map(Some);
        print |n| n.and_then(int);

    /// Picture size, both even (a .y4m file uses its own). [default: 640x480]
    #[arg(value_name = "WxH")]
    size: "size", Option<String> => String => Size = Size { width: 640, height: 480 };
        reload Pipeline; readme r#"`640x480`"#,
            r#"Picture size `WxH`; both even, 16–4096. A `.y4m` file uses its own."#;
        read read_size;
        print |s| text(format!("{}x{}", s.width, s.height));

    /// Frames per second, 1-120 (a .y4m file uses its own). [default: 30]
    #[arg(value_name = "N")]
    fps: "fps", Option<u32> => u32 => u32 = 30;
        reload Pipeline; readme r#"`30`"#,
            r#"Frames per second, 1–120. A `.y4m` file uses its own."#;
        read |v, o| in_range(v, o, 1, 120, " frames per second");
        print |&n| int(n);

    /// Target video bitrate in kbit/s (ABR, capped by VBV at the same rate). [default: 1000]
    #[arg(value_name = "KBPS")]
    bitrate: "bitrate", Option<u32> => u32 => u32 = 1000;
        reload Pipeline; readme r#"`1000`"#,
            r#"Target bitrate in kbit/s, 16–100000. ABR rate control, capped by VBV at the same rate with a 1 s buffer."#;
        read |v, o| in_range(v, o, 16, 100_000, " kbit/s");
        print |&n| int(n);

    /// Seconds between keyframes; new viewers also get one at once. [default: 2]
    #[arg(value_name = "SECONDS")]
    keyint: "keyint", Option<f64> => f64 => Duration = Duration::from_secs(2);
        reload Pipeline; readme r#"`2`"#,
            r#"Seconds between keyframes, 0.1–60. A new viewer starts at a keyframe at once anyway (see [Joining viewers](#joining-viewers))."#;
        read read_keyint;
        print |d| Some(d.as_secs_f64().into());

    /// x264 threads; 0 picks the fewest that keep encoding inside half the
    /// frame interval, measured as it runs. [default: 0]
    #[arg(value_name = "N")]
    threads: "threads", Option<u32> => u32 => u32 = 0;
        reload Pipeline; readme r#"`0`"#,
            r#"x264 threads, 0–64. `0` picks the fewest that keep encoding inside half the frame interval: it starts at one and adds one (at a keyframe, up to the core count) after a 100-frame window whose p99 encode time is over half the interval; never back down. The stats line says `on N threads (auto)`."#;
        read |v, o| in_range(v, o, 0, 64, " (0 = automatic)");
        print |&n| int(n);

    /// Forced IDRs for joining viewers at once (one more per second); past
    /// that a viewer starts at the newest IDR with the frames since; 0 never
    /// forces one. [default: 2]
    #[arg(value_name = "N")]
    keyframe_burst: "keyframe-burst", Option<u32> => u32 => u32 = 2;
        reload Restart; readme r#"`2`"#,
            r#"Forced IDRs for joining viewers at once, 0–100; one more comes back per second. A viewer joining when none is left starts at once at the newest IDR with the frames since (at most 256 KiB, shared). `0` never forces one (a source that cannot be asked for IDRs)."#;
        read |v, o| in_range(v, o, 0, 100, " forced keyframes");
        print |&n| int(n);

    /// RTSP server address, or `off`. [default: 0.0.0.0:8554]
    #[arg(value_name = "ADDR:PORT|off")]
    rtsp: "rtsp", Option<String> => String => Option<SocketAddr> = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8554)));
        reload Restart; readme r#"`0.0.0.0:8554`"#,
            r#"RTSP listen address `ADDR:PORT` (`[::]:8554` for IPv6, `127.0.0.1:0` for any free port), or `off`."#;
        read |v, o| read_listen(v, o, 8554);
        print print_listen;

    /// Path of the stream on the RTSP server. [default: /live]
    #[arg(value_name = "/PATH")]
    rtsp_path: "rtsp-path", Option<String> => String => String = "/live".into();
        reload Restart; readme r#"`/live`"#,
            r#"Path of the stream on the RTSP server."#;
        read read_stream_path;
        print |p| text(p);

    /// HTTP server address (live page, /live.mp4, /api/status, /metrics,
    /// /snapshot.jpg), or `off`. Same users and limits as RTSP. [default: 0.0.0.0:8080]
    #[arg(value_name = "ADDR:PORT|off")]
    http: "http", Option<String> => String => Option<SocketAddr> = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)));
        reload Restart; readme r#"`0.0.0.0:8080`"#,
            r#"HTTP listen address for the page, `/live.mp4`, `/api/status`, `/metrics` and `/snapshot.jpg` (see [In a browser](#in-a-browser-http)), or `off`. A port that cannot be bound is logged and streaming goes on without it."#;
        read |v, o| read_listen(v, o, 8080);
        print print_listen;

    /// UDP address of WebRTC (WHEP, `POST /live/whep` on the HTTP face):
    /// one port for all peers, or `off`. Needs the `webrtc` build feature.
    /// [default: 0.0.0.0:8189]
    #[arg(value_name = "ADDR:PORT|off")]
    webrtc_udp: "webrtc-udp", Option<String> => String => Option<SocketAddr> =
        Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8189)));
        reload Restart; readme r#"`0.0.0.0:8189`"#,
            r#"UDP address for WebRTC (WHEP, see [WebRTC](#webrtc-whep)): one port for all peers, or `off`. Needs the `webrtc` build feature (default). A port that cannot be bound is logged and the page plays over HTTP."#;
        read |v, o| read_listen(v, o, 8189);
        print print_listen;

    /// TCP address of WebRTC's ICE-TCP, for networks that block UDP (the
    /// browser connects to it), or `off`. [default: 0.0.0.0:8189]
    #[arg(value_name = "ADDR:PORT|off")]
    webrtc_tcp: "webrtc-tcp", Option<String> => String => Option<SocketAddr> =
        Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8189)));
        reload Restart; readme r#"`0.0.0.0:8189`"#,
            r#"TCP address for WebRTC's ICE-TCP (RFC 6544), offered beside the UDP candidates for networks that block UDP, or `off`. Needs the `webrtc` build feature (default)."#;
        read |v, o| read_listen(v, o, 8189);
        print print_listen;

    /// More IP addresses to offer WebRTC peers as host candidates on the
    /// webrtc-udp port, for addresses the device cannot see itself (a NAT's
    /// public address). Repeat or separate with commas. [default: none]
    #[arg(value_name = "IP", value_delimiter = ',')]
    webrtc_additional_hosts: "webrtc-additional-hosts", Vec<String> => StringList => Vec<IpAddr> =
        Vec::new();
        reload Restart; readme r#"none"#,
            r#"IP addresses offered to WebRTC peers as host candidates on the `webrtc-udp` port besides the device's own (a NAT's public address). Repeat the flag or separate with commas; a list in the file."#;
        read read_ip_list;
        print |hosts| Some(toml::Value::Array(hosts.iter().map(|h| h.to_string().into()).collect()));

    /// Serve /metrics without credentials (for a Prometheus scraper). [default: false]
    #[arg(value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    metrics_public: "metrics-public", Option<bool> => bool => bool = false;
        reload Restart; readme r#"`false`"#,
            r#"Serve `/metrics` without credentials when users are set."#;
        read |v, _| Ok(v);
        print |&b| Some(b.into());

    /// Push the stream to a server: `rtmp://host[:port]/app[/instance]/stream[?query]`
    /// (RTMP publish), `rtmps://host[:443]/...` (RTMP over TLS) or `tcp://host:port/name`
    /// (raw FLV, name in onMetaData streamName).
    /// Repeat for several targets; each reconnects on its own: within 3 s for the first two minutes of an outage, then backing off to 30 s.
    #[arg(value_name = "URL")]
    push: "push", Vec<String> => PushList => Vec<String> = Vec::new();
        reload Live; readme r#"none"#,
            r#"Push the stream to a server: `rtmp://host[:port]/app[/instance]/stream[?query]` (RTMP publish), `rtmps://host[:443]/...` (RTMP over TLS) or `tcp://host:port/name` (raw FLV). Repeat the flag; in the file, a string, a list, or `[[push]]` tables with `url`. Each target reconnects on its own: within 3 s for the first two minutes of an outage, then backing off to 30 s. See [Pushing to a server](#pushing-to-a-server)."#;
        read read_push;
        print |urls| Some(toml::Value::Array(urls.iter().map(|u| u.clone().into()).collect()));

    /// RTMPS: trust only the CA certificates in this PEM file (a private CA)
    /// instead of the system store (/etc/ssl/certs). [default: the system store]
    #[arg(value_name = "FILE")]
    push_tls_ca: "push-tls-ca", Option<PathBuf> => PathBuf => Option<PathBuf> = None;
        reload Restart; readme r#"the system store"#,
            r#"RTMPS: trust only the CA certificates in this PEM file (a private CA) instead of `/etc/ssl/certs` (or the bundled Mozilla roots where the system has none)."#;
        read read_tls_ca;
        print |f| f.as_ref().and_then(|f| text(f.display()));

    /// Audio track on push targets and RTSP: `off`, or `silent` (AAC-LC mono
    /// silence, for platforms that want audio, such as YouTube). [default: off]
    #[arg(value_name = "off|silent")]
    audio: "audio", Option<String> => String => Audio = Audio::Off;
        reload Restart; readme r#"`off`"#,
            r#"Audio on push targets and the RTSP stream: `off`, or `silent` (an AAC-LC mono track of silence, for platforms that want audio; see [Pushing to a server](#pushing-to-a-server))."#;
        read |v, o| match v.trim() {
            "off" => Ok(Audio::Off),
            "silent" => Ok(Audio::Silent),
            _ => Err(invalid(o, format!("{v:?} is not an audio mode; use off or silent"))),
        };
        print |a| text(match a {
            Audio::Off => "off",
            Audio::Silent => "silent",
        });

    /// Stop cleanly after this many encoded frames (exit 0). [default: run until stopped]
    #[arg(value_name = "N")]
    frames: "frames", Option<u64> => u64 => Option<u64> = None;
        reload Pipeline; readme r#"unlimited"#,
            r#"Stop cleanly (exit 0) after this many encoded frames."#;
        read |v, o| in_range(v, o, 1, u64::MAX, "").map(Some);
        print |n| n.and_then(int);

    /// Pace the test pattern or a file at its frame rate (`realtime`) or as fast
    /// as the encoder goes (`asap`). [default: realtime]
    #[arg(value_name = "realtime|asap")]
    pace: "pace", Option<String> => String => Pace = Pace::Realtime;
        reload Pipeline; readme r#"`realtime`"#,
            r#"`realtime` paces the test pattern or a file at its frame rate. `asap` feeds frames as fast as the encoder takes them, for benchmarks."#;
        read |v, o| match v.trim() {
            "realtime" => Ok(Pace::Realtime),
            "asap" => Ok(Pace::Asap),
            _ => Err(invalid(o, format!("{v:?} is not a pace; use realtime or asap"))),
        };
        print |p| text(match p {
            Pace::Realtime => "realtime",
            Pace::Asap => "asap",
        });

    /// Largest RTP payload in bytes; keep UDP packets under the path MTU. [default: 1400]
    #[arg(value_name = "BYTES")]
    rtp_payload_size: "rtp-payload-size", Option<usize> => usize => usize = 1400;
        reload Restart; readme r#"`1400`"#,
            r#"Largest RTP payload in bytes, 256–65000. Keep UDP packets under the path MTU."#;
        read |v, o| in_range(v, o, 256, 65_000, " bytes");
        print |&n| int(n);

    /// Seconds an RTSP session lives without a request or RTCP from its viewer. [default: 60]
    #[arg(value_name = "SECONDS")]
    session_timeout: "session-timeout", Option<u64> => u64 => Duration = Duration::from_secs(60);
        reload Restart; readme r#"`60`"#,
            r#"Seconds an RTSP session lives without a request or RTCP from its viewer (5–3600). Announced in the `Session` header."#;
        read |v, o| in_range(v, o, 5, 3600, " seconds").map(Duration::from_secs);
        print |d| int(d.as_secs());

    /// Most RTSP sessions at once; more get 453 Not Enough Bandwidth. [default: 32]
    #[arg(value_name = "N")]
    max_viewers: "max-viewers", Option<usize> => usize => usize = 32;
        reload Live; readme r#"`32`"#,
            r#"Most RTSP sessions at once, 1–1024. Any more get `453 Not Enough Bandwidth`."#;
        read |v, o| in_range(v, o, 1, 1024, "");
        print |&n| int(n);

    /// Log level: error, warn, info, debug or trace. [default: info]
    #[arg(value_name = "LEVEL")]
    log_level: "log-level", Option<String> => String => LevelFilter = LevelFilter::Info;
        reload Live; readme r#"`info`"#,
            r#"`error`, `warn`, `info`, `debug` or `trace`."#;
        read read_log_level;
        print |l| text(l.to_string().to_lowercase());

    /// An RTSP user allowed to watch; once any user is set, every RTSP request
    /// but OPTIONS needs credentials (Digest). Repeat for several users. Prefer
    /// --rtsp-users-file: command lines are visible to other local users.
    #[arg(value_name = "USER:PASSWORD")]
    rtsp_user: "rtsp-user", Vec<String> => StringList => Vec<User> = Vec::new();
        reload Live; readme r#"none"#,
            r#"An RTSP user (repeat the flag; in the file one string or a list). Once any user is set, every request except OPTIONS needs credentials. Prefer `rtsp-users-file`, because command lines are visible to other local users. `--print-config` prints these as `user:<hidden>`."#;
        read read_users;
        print |users| Some(toml::Value::Array(
            users.iter().map(|u| format!("{}{HIDDEN}", u.name).into()).collect(),
        ));

    /// A file of RTSP users, one `user:password` or htdigest `user:edgestream:md5`
    /// per line; it must not be readable by group or others.
    #[arg(value_name = "FILE")]
    rtsp_users_file: "rtsp-users-file", Option<PathBuf> => PathBuf => Option<UsersFile> = None;
        reload Live; readme r#"none"#,
            r#"A file of users, one `user:password` or htdigest `user:edgestream:md5hex` per line (`#` comments). It must not be readable by group or others (`chmod 600`). A relative path in the config file is relative to the config file's folder. Under the systemd unit it must belong to the service user: `sudo install -m 0600 -o edgestream -g edgestream users /etc/edgestream/users` (systemd starts edgestream as that user, so it cannot read the file as root first; `board/install.sh` fixes the owner of an existing `/etc/edgestream/users`)."#;
        read read_users_file;
        print |f| f.as_ref().and_then(|f| text(f.path.display()));

    /// Also accept Basic authentication (the password crosses the network in
    /// the clear; Digest is always offered). [default: false]
    #[arg(num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    rtsp_basic_auth: "rtsp-basic-auth", Option<bool> => bool => bool = false;
        reload Live; readme r#"`false`"#,
            r#"Also accept Basic authentication. With Basic, the password crosses the network in the clear. Digest is always offered."#;
        read |v, _| Ok(v);
        print |&b| Some(b.into());

    /// Most RTSP connections at once; more are answered 503 and closed. [default: 512]
    #[arg(value_name = "N")]
    max_connections: "max-connections", Option<usize> => usize => usize = 512;
        reload Live; readme r#"`512`"#,
            r#"Most RTSP connections at once. Any more are answered `503` and closed."#;
        read |v, o| in_range(v, o, 1, 65_536, "");
        print |&n| int(n);

    /// Most RTSP connections from one client address (an NVR, a proxy or a
    /// NAT'd office is one address). [default: max-viewers + 8, so 40]
    #[arg(value_name = "N")]
    max_connections_per_ip: "max-connections-per-ip", Option<usize> => usize => usize = PER_IP_SPARE /* + max-viewers, see Config::default */;
        reload Live; readme r#"`max-viewers` + 8 (`40`)"#,
            r#"Most RTSP connections from one client address. The default never refuses a legitimate client: an NVR, a reverse proxy or a NAT'd office is one address and may take every viewer slot. Lower it only when the device faces untrusted networks where one address should not crowd out the others; the handshake and idle timeouts and `max-connections` already hold off exhaustion."#;
        read |v, o| in_range(v, o, 1, 65_536, "");
        print |&n| int(n);

    /// Largest RTSP request header block in bytes; larger gets 400. [default: 8192]
    #[arg(value_name = "BYTES")]
    max_request_bytes: "max-request-bytes", Option<usize> => usize => usize = 8192;
        reload Restart; readme r#"`8192`"#,
            r#"Largest request header block, 1024–65536. A larger one gets `400` and its connection is closed."#;
        read |v, o| in_range(v, o, 1024, 65_536, " bytes");
        print |&n| int(n);

    /// Requests per second one RTSP connection may make (bursts of twice that);
    /// more get 503. [default: 20]
    #[arg(value_name = "N")]
    max_requests_per_second: "max-requests-per-second", Option<u32> => u32 => u32 = 20;
        reload Live; readme r#"`20`"#,
            r#"Requests per second one connection may make, with bursts of twice that. Any more get `503`."#;
        read |v, o| in_range(v, o, 1, 10_000, "");
        print |&n| int(n);

    /// Seconds a client has to send a complete request after connecting or
    /// starting one; slower ones get 408 and are closed. [default: 10]
    #[arg(value_name = "SECONDS")]
    handshake_timeout: "handshake-timeout", Option<u64> => u64 => Duration = Duration::from_secs(10);
        reload Restart; readme r#"`10`"#,
            r#"Seconds a client has to send a complete request after connecting, or after starting one. A client that is slower gets `408` and is closed. This stops idle and trickling connections."#;
        read |v, o| in_range(v, o, 1, 600, " seconds").map(Duration::from_secs);
        print |d| int(d.as_secs());

    /// Seconds an RTSP connection without a session may stay idle. [default: 30]
    #[arg(value_name = "SECONDS")]
    idle_timeout: "idle-timeout", Option<u64> => u64 => Duration = Duration::from_secs(30);
        reload Restart; readme r#"`30`"#,
            r#"Seconds a connection without a session may stay idle."#;
        read |v, o| in_range(v, o, 1, 3600, " seconds").map(Duration::from_secs);
        print |d| int(d.as_secs());

    /// UDP ports for RTP/RTCP over UDP, FIRST-LAST (e.g. 50000-50001), for a
    /// firewall rule; the server takes the first free even/odd pair in it.
    /// `auto`: a random pair. [default: auto]
    #[arg(value_name = "FIRST-LAST|auto")]
    rtsp_udp_ports: "rtsp-udp-ports", Option<String> => String => Option<(u16, u16)> = None;
        reload Restart; readme r#"`auto`"#,
            r#"The UDP ports RTP and RTCP over UDP use, `FIRST-LAST` (e.g. `50000-50001`): the server takes the first free even port and the next one in the range, so a firewall can open just those. `auto` picks a random pair. All UDP viewers share the pair."#;
        read read_port_range;
        print |r| text(r.map_or_else(|| "auto".to_string(), |(a, b)| format!("{a}-{b}")));

    /// Status LED on a GPIO line: CHIP:LINE, e.g. gpiochip0:17 (a Raspberry Pi's
    /// BCM GPIO 17); append :active-low if the LED lights when the pin is low.
    /// [default: off]
    #[arg(value_name = "CHIP:LINE[:active-low]|off")]
    led: "led", Option<String> => String => Option<GpioLine> = None;
        reload Restart; readme r#"`off`"#,
            r#"Status LED on a GPIO line, `CHIP:LINE` (`gpiochip0:17` is a Raspberry Pi's BCM GPIO 17; `/dev/gpiochipN:LINE` works too). Append `:active-low` if the LED lights when the pin is low. See [Running on a Raspberry Pi](#running-on-a-raspberry-pi)."#;
        read read_gpio;
        print print_gpio;

    /// Privacy button on a GPIO line: each press pauses or resumes capture.
    /// CHIP:LINE, e.g. gpiochip0:27; append :active-low if pressing pulls the
    /// pin low. [default: off]
    #[arg(value_name = "CHIP:LINE[:active-low]|off")]
    button: "button", Option<String> => String => Option<GpioLine> = None;
        reload Restart; readme r#"`off`"#,
            r#"Privacy button on a GPIO line, `CHIP:LINE[:active-low]`: each press pauses or resumes capture (viewers stay connected). `:active-low` if pressing pulls the pin low."#;
        read read_gpio;
        print print_gpio;

    /// Camera pixel format: `auto` picks the best the camera offers at --size and
    /// --fps (YU12, NV12, YUYV, UYVY, MJPG, H264 in that order); a fourcc forces one.
    /// [default: auto]
    #[arg(value_name = "auto|FOURCC")]
    camera_format: "camera-format", Option<String> => String => Option<PixelFormat> = None;
        reload Pipeline; readme r#"`auto`"#,
            r#"Camera pixel format: `auto` takes the best the camera offers at `--size` and `--fps` (`YU12`, `NV12`, `YUYV`, `UYVY`, `MJPG`, `H264`, in that order); a fourcc insists on that one."#;
        read read_camera_format;
        print |p| text(p.map_or("auto", |p| p.fourcc()));
}
