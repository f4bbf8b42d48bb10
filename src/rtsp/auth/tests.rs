//! Digest and Basic authentication against fixed nonces and times.

use super::*;

fn auth(basic: bool) -> (Authenticator, Instant) {
    let epoch = Instant::now();
    let users = vec![
        User::parse("viewer:s3cret:with:colons").unwrap(),
        // htdigest line for admin/admin in realm edgestream.
        User::parse(&format!(
            "admin:{REALM}:{}",
            md5_hex(&[b"admin", REALM.as_bytes(), b"admin"])
        ))
        .unwrap(),
    ];
    (Authenticator::new(users, basic, [7; 32], epoch), epoch)
}

fn nonce_of(challenge: &str) -> String {
    let p = parse_params(challenge.strip_prefix("Digest ").unwrap()).unwrap();
    p.into_iter().find(|(k, _)| k == "nonce").unwrap().1
}

fn digest(user: &str, pass: &str, method: &str, uri: &str, nonce: &str, qop: bool) -> String {
    let ha1 = md5_hex(&[user.as_bytes(), REALM.as_bytes(), pass.as_bytes()]);
    let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
    if qop {
        let r = md5_hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            b"00000001",
            b"abcd",
            b"auth",
            ha2.as_bytes(),
        ]);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", qop=auth, nc=00000001, cnonce=\"abcd\", algorithm=MD5"
        )
    } else {
        let r = md5_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\""
        )
    }
}

const URI: &str = "rtsp://127.0.0.1:8554/live";

#[test]
fn digest_with_and_without_qop() {
    let (a, t0) = auth(false);
    let ch = a.challenges(t0, false);
    assert_eq!(ch.len(), 1);
    assert!(ch[0].starts_with("Digest realm=\"edgestream\", nonce=\""));
    let n = nonce_of(&ch[0]);
    for qop in [false, true] {
        let h = digest("viewer", "s3cret:with:colons", "DESCRIBE", URI, &n, qop);
        assert_eq!(
            a.check("DESCRIBE", URI, Some(&h), t0),
            Outcome::Ok("viewer".into())
        );
        let h = digest(
            "admin",
            "admin",
            "SETUP",
            "rtsp://127.0.0.1:8554/live/trackID=0",
            &n,
            qop,
        );
        assert_eq!(
            a.check(
                "SETUP",
                "rtsp://127.0.0.1:8554/live/trackID=0",
                Some(&h),
                t0
            ),
            Outcome::Ok("admin".into())
        );
    }
}

#[test]
fn wrong_credentials_and_forged_nonces_are_denied() {
    let (a, t0) = auth(false);
    let n = nonce_of(&a.challenges(t0, false)[0]);
    let denied = |h: &str| matches!(a.check("DESCRIBE", URI, Some(h), t0), Outcome::Denied(_));
    assert!(denied(&digest(
        "viewer", "wrong", "DESCRIBE", URI, &n, false
    )));
    assert!(denied(&digest(
        "nobody",
        "s3cret:with:colons",
        "DESCRIBE",
        URI,
        &n,
        false
    )));
    // Right password, but signed for another method or resource.
    assert!(denied(&digest(
        "viewer",
        "s3cret:with:colons",
        "PLAY",
        URI,
        &n,
        false
    )));
    assert!(denied(&digest(
        "viewer",
        "s3cret:with:colons",
        "DESCRIBE",
        "rtsp://h/other",
        &n,
        false
    )));
    // A nonce we never issued (MAC does not verify).
    let forged = format!("{:016x}{}", 0, "0".repeat(32));
    assert!(denied(&digest(
        "viewer",
        "s3cret:with:colons",
        "DESCRIBE",
        URI,
        &forged,
        false
    )));
    assert!(matches!(
        a.check("DESCRIBE", URI, None, t0),
        Outcome::Denied(_)
    ));
    assert!(denied("Digest username=\"viewer\""));
    assert!(denied("Digest garbage"));
    assert!(denied("Basic dmlld2VyOnMzY3JldA=="), "Basic is off");
    assert!(denied("Bearer x"));
}

#[test]
fn nonces_expire_into_stale() {
    let (a, t0) = auth(false);
    let n = nonce_of(&a.challenges(t0, false)[0]);
    let h = digest("viewer", "s3cret:with:colons", "DESCRIBE", URI, &n, false);
    let later = t0 + NONCE_LIFETIME + Duration::from_secs(2);
    assert_eq!(
        a.check("DESCRIBE", URI, Some(&h), later),
        Outcome::Stale("viewer".into())
    );
    let wrong = digest("viewer", "nope", "DESCRIBE", URI, &n, false);
    assert!(matches!(
        a.check("DESCRIBE", URI, Some(&wrong), later),
        Outcome::Denied(_)
    ));
    assert!(a.challenges(later, true)[0].ends_with("stale=TRUE"));
}

#[test]
fn basic_when_enabled() {
    let (a, t0) = auth(true);
    assert_eq!(a.challenges(t0, false)[1], "Basic realm=\"edgestream\"");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert_eq!(
        a.check(
            "DESCRIBE",
            URI,
            Some(&format!("Basic {}", b64("viewer:s3cret:with:colons"))),
            t0
        ),
        Outcome::Ok("viewer".into())
    );
    assert!(matches!(
        a.check(
            "DESCRIBE",
            URI,
            Some(&format!("Basic {}", b64("viewer:x"))),
            t0
        ),
        Outcome::Denied(_)
    ));
    assert!(matches!(
        a.check("DESCRIBE", URI, Some("Basic !!!"), t0),
        Outcome::Denied(_)
    ));
}

#[test]
fn user_entries() {
    assert!(User::parse("nopassword").is_err());
    assert!(User::parse("a:").is_err());
    assert!(User::parse(":pw").is_err());
    assert!(
        User::parse(&format!("a:otherrealm:{}", "0".repeat(32)))
            .unwrap_err()
            .to_string()
            .contains("realm")
    );
    assert_eq!(format!("{:?}", User::parse("x:y").unwrap()), "User(\"x\")");
}

#[test]
fn params_parser() {
    let p = parse_params(r#"username="a\"b", realm=edgestream , qop=auth,nc=00000001"#).unwrap();
    assert_eq!(p[0], ("username".into(), "a\"b".into()));
    assert_eq!(p[1], ("realm".into(), "edgestream".into()));
    assert_eq!(p[3], ("nc".into(), "00000001".into()));
    assert!(parse_params("a=\"open").is_err());
    assert!(parse_params("novalue").is_err());
    assert!(parse_params(&"a=1,".repeat(17)).is_err());
    assert!(parse_params("").unwrap().is_empty());
    assert!(same_resource("/live/", "rtsp://h:1/live"));
    assert!(!same_resource("/live2", "rtsp://h:1/live"));
}
