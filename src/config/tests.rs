use std::path::Path;
use std::time::Duration;

use clap::Parser;

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
            .to_string();
        assert!(
            e.contains("`rtsp-udp-ports`") && e.contains("FIRST-LAST"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let e = from_toml("fsp = 10", &[]).unwrap_err().to_string();
    assert!(e.contains("unknown key `fsp`: did you mean `fps`?"), "{e}");
    let e = from_toml("max-viewer = 10", &[]).unwrap_err().to_string();
    assert!(e.contains("did you mean `max-viewers`?"), "{e}");
    let e = from_toml("frobnicate = 1", &[]).unwrap_err().to_string();
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
    assert_eq!(one.rtsp_users().len(), 1);
    let two = from_toml("rtsp-user = [\"alice:pw\", \"bob:pw\"]", &[]).unwrap();
    assert_eq!(two.rtsp_users().len(), 2);
    let e = from_toml("rtsp-user = 3", &[]).unwrap_err().to_string();
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
    assert_eq!(c.rtsp_users().len(), 1);
    assert_eq!(
        c.rtsp_users_file.as_ref().map(|f| f.path.as_path()),
        Some(users.as_path())
    );
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
    assert_eq!((c.size.width, c.size.height, c.fps), (1280, 720, 25));
    assert_eq!(c.rtsp, None);
    assert_eq!(c.rtsp_path, "/cam");
    assert_eq!(c.push, vec!["tcp://127.0.0.1:6666/cam1"]);
    assert_eq!(c.keyint, Duration::from_secs(1));
}

#[test]
fn errors_name_the_flag_or_key_and_the_fix() {
    let e = from_toml("fps = 500", &[]).unwrap_err().to_string();
    assert!(
        e.contains("`fps` in /etc/edgestream/edgestream.toml") && e.contains("1 to 120"),
        "{e}"
    );
    let e = from_toml("", &["--fps", "0"]).unwrap_err().to_string();
    assert!(e.starts_with("--fps: 0 is out of range"), "{e}");
    let e = from_toml("size = \"641x480\"", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("must be even"), "{e}");
    let e = from_toml("", &["--size", "big"]).unwrap_err().to_string();
    assert!(e.contains("--size") && e.contains("WxH"), "{e}");
    let e = from_toml("fpss = 3", &[]).unwrap_err().to_string();
    assert!(
        e.contains("unknown field `fpss`") && e.contains("fps"),
        "{e}"
    );
    let e = from_toml("fps = \"thirty\"", &[]).unwrap_err().to_string();
    assert!(e.contains("fps"), "{e}");
    let e = from_toml("", &["--rtsp", "8554"]).unwrap_err().to_string();
    assert!(e.contains("ADDR:PORT"), "{e}");
    let e = from_toml("", &["--source", "camera"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/dev/video0"), "{e}");
    let e = from_toml("", &["--push", "http://x/y"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("rtmp://"), "{e}");
    let e = from_toml("", &["--push", "rtmp://server"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("stream name"), "{e}");
    let e = from_toml("", &["--rtsp-path", "live"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/live"), "{e}");
    let e = from_toml("", &["--pace", "fast"]).unwrap_err().to_string();
    assert!(e.contains("realtime or asap"), "{e}");
    let e = from_toml("", &["--keyint", "NaN"]).unwrap_err().to_string();
    assert!(e.contains("--keyint"), "{e}");
    let e = from_toml("", &["--log-level", "loud"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("debug"), "{e}");
    let e = from_toml("led = \"gpio17\"", &[]).unwrap_err().to_string();
    assert!(
        e.contains("`led` in") && e.contains("gpiochip0:17") && e.contains("off"),
        "{e}"
    );
    let e = from_toml("", &["--button", "gpiochip0:27:inverted"])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--button:") && e.contains(":active-low"),
        "{e}"
    );
    let e = from_toml("led = \"gpiochip0:17\"", &["--button", "/dev/gpiochip0:17"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("the LED's line"), "{e}");
    let e = from_toml("camera-format = \"RGB3\"", &[])
        .unwrap_err()
        .to_string();
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
        .to_string();
    assert!(
        e.contains("unknown key `key`") && e.contains("`url`"),
        "{e}"
    );
    let e = from_toml("[[push]]\nname = \"x\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `name`"), "{e}");
    let e = from_toml("[[push]]\n", &[]).unwrap_err().to_string();
    assert!(e.contains("needs url ="), "{e}");
    let e = from_toml("push = [3]", &[]).unwrap_err().to_string();
    assert!(e.contains("push URL string"), "{e}");
    let e = from_toml("[[push]]\nurl = \"tcp://h/x\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`push` in /etc/edgestream/edgestream.toml") && e.contains("needs a port"),
        "{e}"
    );
    let e = from_toml("", &["--push", "rtmp://h/live"])
        .unwrap_err()
        .to_string();
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
    assert_eq!(c.rtsp_users().len(), 1);
    assert!(c.rtsp_basic_auth);
    let printed = c.to_toml();
    assert!(
        printed.contains("rtsp-user = [\"viewer:<hidden>\"]"),
        "{printed}"
    );
    assert!(!printed.contains("pw\""));
    let e = from_toml(&printed, &[]).unwrap_err().to_string();
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
    let e = from_toml("", &["--rtsp-users-file", fs])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--rtsp-users-file") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = from_toml("", &["--rtsp-users-file", fs, "--rtsp-user", "carol:x"]).unwrap();
    let users = c.rtsp_users();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["carol", "alice", "bob"]);
    let e = from_toml("", &["--rtsp-users-file", fs, "--rtsp-user", "alice:x"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("defined twice"), "{e}");
    std::fs::write(&f, "alice\n").unwrap();
    let e = from_toml("", &["--rtsp-users-file", fs])
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = from_toml("", &["--rtsp-user", "nopassword"])
        .unwrap_err()
        .to_string();
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
        (100, Duration::from_secs(5), 3)
    );
    let e = from_toml("max-request-bytes = 10", &[])
        .unwrap_err()
        .to_string();
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
        .to_string();
    assert!(e.contains("exec:"), "{e}");
    let e = from_toml("source = \"-\"\nsource-format = \"rgb\"", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`source-format` in") && e.contains("i420"),
        "{e}"
    );
    let e = from_toml("source = []", &[]).unwrap_err().to_string();
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

/// The README's table has one row per key, the one the key table gives.
#[test]
fn readme_lists_exactly_the_keys() {
    let readme = include_str!("../../README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `--") && l.contains("` / `"))
        .collect();
    for key in KEYS {
        let want = key.readme_row();
        assert!(
            rows.contains(&want.as_str()),
            "README.md has no row, or another one, for `{}`; the key table's is:\n{want}",
            key.name
        );
    }
    let extra: Vec<&&str> = rows
        .iter()
        .filter(|r| !KEYS.iter().any(|k| k.readme_row() == **r))
        // A key of a feature left out of this build cannot be compared.
        .filter(|r| {
            !keys::ALL_NAMES.iter().any(|n| {
                !KEYS.iter().any(|k| k.name == *n) && r.starts_with(&format!("| `--{n}` "))
            })
        })
        .collect();
    assert!(extra.is_empty(), "README rows for no key: {extra:?}");
}

/// `--help`, `--print-config` and the README's default column agree with
/// the defaults of the table.
#[test]
fn help_and_readme_state_the_defaults() {
    use clap::CommandFactory;
    let printed = Config::default().to_toml();
    let cmd = Cli::command();
    for key in KEYS {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.name))
            .unwrap_or_else(|| panic!("no flag --{}", key.name));
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(!help.is_empty(), "--{} has no help", key.name);
        let Some(line) = printed
            .lines()
            .find(|l| l.starts_with(&format!("{} = ", key.name)))
        else {
            continue;
        };
        let value = line[key.name.len() + 3..].trim_matches('"');
        if value.starts_with('[') {
            continue;
        }
        let value = value.strip_suffix(".0").unwrap_or(value);
        assert!(
            key.readme_default.contains(&format!("`{value}`")),
            "README default of {} is {:?}, not {value}",
            key.name,
            key.readme_default
        );
        if let Some(stated) = help.split("[default: ").nth(1) {
            assert!(
                stated.contains(value),
                "--help of --{} says [default: {stated}, not {value}",
                key.name
            );
        }
    }
    // Everything printed is a key.
    for (key, _) in printed.lines().filter_map(|l| l.split_once(" = ")) {
        assert!(KEYS.iter().any(|k| k.name == key), "{key} is printed");
    }
}

/// The README's reload paragraph puts each key where the table does.
#[test]
fn readme_says_how_reload_applies_each_key() {
    let readme = include_str!("../../README.md");
    let section = |start: &str, end: &str| -> String {
        let from = readme.find(start).expect(start);
        let rest = &readme[from..];
        rest[..rest.find(end).expect(end)].to_string()
    };
    let live = section("- applied live, nobody dropped:", "- applied by restarting");
    let pipeline = section(
        "- applied by restarting the capture pipeline",
        "- logged as needing",
    );
    let restart = section("- logged as needing `systemctl restart`:", "\n\n");
    for key in KEYS {
        let text = match key.reload {
            Apply::Live => &live,
            Apply::Pipeline => &pipeline,
            Apply::Restart => &restart,
        };
        assert!(
            text.contains(&format!("`{}`", key.name)),
            "README's reload paragraph does not list `{}` as {:?}",
            key.name,
            key.reload
        );
    }
}

/// The other structs take their defaults from the config.
#[test]
fn defaults_are_defined_once() {
    let c = Config::default();
    assert_eq!(
        crate::rtsp::limits::LimitSettings::default(),
        crate::app::limit_settings(&c)
    );
    let o = crate::rtsp::ServerOptions::default();
    assert_eq!(
        (o.path, o.session_timeout, o.max_payload, o.max_viewers),
        (
            c.rtsp_path.clone(),
            c.session_timeout,
            c.rtp_payload_size,
            c.max_viewers
        )
    );
    assert_eq!(
        crate::rtsp::parse::Limits::default().max_header_bytes,
        c.max_request_bytes
    );
}
