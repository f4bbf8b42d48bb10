//! The RTSP server's network face: authentication with real clients,
//! connection and request limits, timeouts against idle and trickling
//! connections.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The nonce of a 401's Digest challenge.
fn nonce(resp: &str) -> String {
    let ch = resp
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate: Digest"))
        .unwrap_or_else(|| panic!("no Digest challenge in:\n{resp}"));
    let i = ch.find("nonce=\"").unwrap() + 7;
    ch[i..].split('"').next().unwrap().to_string()
}

fn digest_header(user: &str, pass: &str, method: &str, uri: &str, nonce: &str) -> String {
    let ha1 = md5_hex(&format!("{user}:edgestream:{pass}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let r = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"edgestream\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\"\r\n"
    )
}

#[test]
fn ffmpeg_and_retina_authenticate_and_play() {
    let es = Edgestream::start(&["--size", "320x240", "--rtsp-user", "viewer:s3cr3t!"]);
    let dir = temp_dir("auth-ffmpeg");
    let out = dir.join("auth.mkv");
    let url = es.url.replacen("rtsp://", "rtsp://viewer:s3cr3t!@", 1);
    ffmpeg_record(&url, "tcp", 3, &out);
    assert!(decode_errors(&out).is_empty());
    assert!(probe_frames(&out).len() >= 80);

    let v = block_on(retina_view_as(
        &es.url,
        "tcp",
        3.0,
        Some(("viewer", "s3cr3t!")),
    ))
    .unwrap();
    assert!(v.first_is_key && v.frames >= 80, "{v:?}");
    let v = block_on(retina_view_as(
        &es.url,
        "udp",
        3.0,
        Some(("viewer", "s3cr3t!")),
    ))
    .unwrap();
    assert!(v.frames >= 80, "{v:?}");

    // Without or with wrong credentials: refused, no media.
    let e = block_on(retina_view(&es.url, "tcp", 2.0)).unwrap_err();
    assert!(e.contains("Unauthorized"), "{e}");
    let e = block_on(retina_view_as(
        &es.url,
        "tcp",
        2.0,
        Some(("viewer", "guess")),
    ))
    .unwrap_err();
    assert!(e.contains("Unauthorized"), "{e}");
    let bad = es.url.replacen("rtsp://", "rtsp://viewer:guess@", 1);
    let status = tool("timeout")
        .args([
            "20",
            "ffmpeg",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &bad,
        ])
        .args(["-t", "1", "-f", "null", "-"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "ffmpeg played with a wrong password");
    assert!(
        es.log_text()
            .contains("wrong password or unknown user \"viewer\""),
        "{}",
        es.log_text()
    );
    assert!(es.stop().success());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_wrong_password_gets_401_and_no_media() {
    let es = Edgestream::start(&["--size", "160x120", "--rtsp-user", "viewer:right"]);
    let addr = es.addr();
    let url = format!("rtsp://{addr}/live");
    let mut c = RawClient::connect(&addr);
    let (status, _) = c
        .request(&format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
        .unwrap();
    assert_eq!(status, 200, "OPTIONS needs no credentials");
    let (status, resp) = c
        .request(&format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\n\r\n"))
        .unwrap();
    assert_eq!(status, 401);
    let n = nonce(&resp);
    let track = format!("{url}/trackID=0");
    let (status, _) = c
        .request(&format!(
            "SETUP {track} RTSP/1.0\r\nCSeq: 3\r\n{}Transport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n",
            digest_header("viewer", "wrong", "SETUP", &track, &n)
        ))
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = c
        .request(&format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 4\r\nSession: 0000000000000000\r\n{}\r\n",
            digest_header("viewer", "wrong", "PLAY", &url, &n)
        ))
        .unwrap();
    assert_eq!(status, 401);
    // Nothing but responses arrives: no interleaved media.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut c.stream, &mut rest);
    assert!(!rest.contains(&b'$'), "media after a refused login");

    // The right password on a fresh connection works, with the same nonce.
    let mut c = RawClient::connect(&addr);
    let (status, resp) = c
        .request(&format!(
            "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n{}\r\n",
            digest_header("viewer", "right", "DESCRIBE", &url, &n)
        ))
        .unwrap();
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("m=video"));
    assert!(es.stop().success());
}

#[test]
fn idle_connections_do_not_lock_out_a_viewer_and_limits_refuse_clearly() {
    let es = Edgestream::start(&[
        "--size",
        "160x120",
        "--max-connections-per-ip",
        "10",
        "--handshake-timeout",
        "120",
        "--max-viewers",
        "2",
    ]);
    let addr = es.addr();
    // 300 idle connections from 30 loopback addresses, 10 each.
    let mut idle = Vec::new();
    for a in 0..30u8 {
        let ip = IpAddr::from([127, 0, 1, 2 + a]);
        for _ in 0..10 {
            idle.push(RawClient::connect_from(&addr, ip).unwrap());
        }
    }
    // An 11th from the same address is refused with a clear answer.
    let mut extra = RawClient::connect_from(&addr, IpAddr::from([127, 0, 1, 2])).unwrap();
    let (status, resp) = extra.response().unwrap();
    assert_eq!(status, 503);
    assert!(
        resp.contains("127.0.1.2 already has its maximum of 10 connections"),
        "{resp}"
    );
    // A new viewer still plays.
    let v = block_on(retina_view(&es.url, "tcp", 3.0)).unwrap();
    assert!(v.frames >= 60, "{v:?}");

    // More viewers than max-viewers: the third gets 453.
    let url = es.url.clone();
    let (a, b, c) = block_on(async move {
        let a = tokio::spawn(retina_view_owned(url.clone(), 4.0));
        let b = tokio::spawn(retina_view_owned(url.clone(), 4.0));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let c = retina_view(&url, "tcp", 1.0).await;
        (a.await.unwrap(), b.await.unwrap(), c)
    });
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let e = c.unwrap_err();
    assert!(e.contains("Not Enough Bandwidth"), "{e}");
    drop(idle);
    assert!(es.stop().success());
}

async fn retina_view_owned(url: String, secs: f64) -> Result<Viewed, String> {
    retina_view(&url, "tcp", secs).await
}

#[test]
fn trickling_and_idle_connections_are_closed() {
    let es = Edgestream::start(&[
        "--size",
        "160x120",
        "--handshake-timeout",
        "2",
        "--idle-timeout",
        "3",
    ]);
    let addr = es.addr();
    // Trickles a request one byte a second: 408 and closed.
    let mut slow = RawClient::connect(&addr);
    let req = format!("OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    for b in req.bytes().take(8) {
        if std::io::Write::write_all(&mut slow.stream, &[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(slow.response().map(|r| r.0), Some(408));
    assert!(slow.closed_within(Duration::from_secs(2)));

    // Connected and silent: closed by the handshake timeout.
    let mut silent = RawClient::connect(&addr);
    assert!(silent.closed_within(Duration::from_secs(6)));

    // A request, then silence without a session: closed by the idle timeout.
    let mut idle = RawClient::connect(&addr);
    let (status, _) = idle
        .request(&format!(
            "OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        !idle.closed_within(Duration::from_secs(2)),
        "closed before the idle timeout"
    );
    assert!(
        idle.closed_within(Duration::from_secs(4)),
        "not closed after the idle timeout"
    );
    assert!(es.stop().success());
}

#[test]
fn request_floods_are_answered_503() {
    let es = Edgestream::start(&["--size", "160x120", "--max-requests-per-second", "5"]);
    let addr = es.addr();
    let mut c = RawClient::connect(&addr);
    let mut batch = String::new();
    for i in 1..=40 {
        batch.push_str(&format!(
            "OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: {i}\r\n\r\n"
        ));
    }
    c.send(batch.as_bytes());
    let statuses: Vec<u16> = (0..40).map(|_| c.response().unwrap().0).collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + limited, 40);
    assert!(
        (10..=12).contains(&ok),
        "burst of twice the rate, got {ok} OK"
    );
    // The connection still works after a pause.
    std::thread::sleep(Duration::from_secs(1));
    let (status, _) = c
        .request(&format!(
            "OPTIONS rtsp://{addr}/live RTSP/1.0\r\nCSeq: 99\r\n\r\n"
        ))
        .unwrap();
    assert_eq!(status, 200);
    assert!(es.stop().success());
}
