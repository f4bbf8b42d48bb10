//! The publish start and the refusals as the common servers (nginx-rtmp,
//! SRS, Wowza, YouTube, Facebook) word them, from a session that sent `publish`.

use super::*;

/// A session that sent `publish`, with the server's answers so far made by
/// `w` (connect `_result` txn 1, createStream `_result` txn 4, stream 1).
fn publishing() -> (PublishSession, ChunkWriter) {
    let (mut s, w) = connected();
    let connect = [
        Value::str("_result"),
        Value::Number(1.0),
        Value::Null,
        Value::Object(vec![
            ("level".into(), Value::str("status")),
            ("code".into(), Value::str("NetConnection.Connect.Success")),
        ]),
    ];
    s.handle_input(&server_command(&w, &connect)).unwrap();
    // SRS answers FCPublish with onFCPublish carrying Publish.Start before
    // the stream exists: not the start yet.
    let fc = [
        Value::str("onFCPublish"),
        Value::Number(0.0),
        Value::Null,
        Value::Object(vec![
            ("code".into(), Value::str("NetStream.Publish.Start")),
            (
                "description".into(),
                Value::str("Started publishing stream."),
            ),
        ]),
    ];
    s.handle_input(&server_command(&w, &fc)).unwrap();
    let created = [
        Value::str("_result"),
        Value::Number(4.0),
        Value::Null,
        Value::Number(1.0),
    ];
    s.handle_input(&server_command(&w, &created)).unwrap();
    assert_eq!(s.phase(), Phase::Publishing);
    (s, w)
}

fn on_status(level: &str, code: &str, description: &str, with_null: bool) -> Vec<Value> {
    let mut v = vec![Value::str("onStatus"), Value::Number(0.0)];
    if with_null {
        v.push(Value::Null);
    }
    v.push(Value::Object(vec![
        ("level".into(), Value::str(level)),
        ("code".into(), Value::str(code)),
        ("description".into(), Value::str(description)),
        ("clientid".into(), Value::Number(1.0)),
    ]));
    v
}

#[test]
fn publish_start_as_the_common_servers_say_it() {
    let starts = [
        (
            "nginx-rtmp",
            on_status(
                "status",
                "NetStream.Publish.Start",
                "Start publishing",
                true,
            ),
        ),
        (
            "SRS",
            on_status(
                "status",
                "NetStream.Publish.Start",
                "Started publishing stream.",
                true,
            ),
        ),
        (
            "MediaMTX",
            on_status("status", "NetStream.Publish.Start", "publish start", true),
        ),
        (
            "Wowza",
            on_status(
                "status",
                "NetStream.Publish.Start",
                "cam1 is now published.",
                true,
            ),
        ),
        (
            "YouTube",
            on_status(
                "status",
                "NetStream.Publish.Start",
                "Start publishing",
                true,
            ),
        ),
        (
            "no null",
            on_status("status", "NetStream.Publish.Start", "", false),
        ),
        (
            "lower case",
            on_status("status", "netstream.publish.start", "", true),
        ),
        (
            "_result to publish",
            vec![
                Value::str("_result"),
                Value::Number(5.0),
                Value::Null,
                Value::Null,
            ],
        ),
    ];
    for (server, answer) in starts {
        let (mut s, w) = publishing();
        // Wowza's onBWDone and |RtmpSampleAccess, and a message type no
        // one knows, come first: skipped.
        let mut bytes = server_command(
            &w,
            &[Value::str("onBWDone"), Value::Number(0.0), Value::Null],
        );
        w.write(
            5,
            msg_type::DATA_AMF0,
            1,
            0,
            &amf0::encode_all(&[Value::str("|RtmpSampleAccess")]),
            &mut bytes,
        );
        w.write(6, 0x33, 1, 0, &[9, 9, 9], &mut bytes);
        bytes.extend(server_command(&w, &answer));
        s.handle_input(&bytes)
            .unwrap_or_else(|e| panic!("{server}: {e}"));
        assert_eq!(s.phase(), Phase::Published, "{server}");
        assert_eq!(s.poll_event(), Some(Event::Connected), "{server}");
        assert_eq!(s.poll_event(), Some(Event::PublishStarted), "{server}");
    }
}

#[test]
fn refusals_as_the_common_servers_say_them() {
    let refusals = [
        (
            "nginx-rtmp",
            on_status(
                "error",
                "NetStream.Publish.BadName",
                "Already publishing",
                true,
            ),
        ),
        (
            "Wowza",
            on_status("error", "NetStream.Publish.Denied", "denied", true),
        ),
        (
            "MediaMTX",
            on_status("error", "NetStream.Publish.Failed", "auth", false),
        ),
        (
            "YouTube",
            on_status("status", "NetStream.Publish.Rejected", "bad key", true),
        ),
        (
            "any",
            on_status("status", "NetConnection.Connect.Closed", "", true),
        ),
    ];
    for (server, answer) in refusals {
        let (mut s, w) = publishing();
        let e = s
            .handle_input(&server_command(&w, &answer))
            .expect_err(server);
        assert!(
            e.to_string().starts_with("publish refused: "),
            "{server}: {e}"
        );
    }
    // A status that is neither: passed on, still publishing.
    let (mut s, w) = publishing();
    s.handle_input(&server_command(
        &w,
        &on_status("status", "NetStream.Publish.Start", "", true),
    ))
    .unwrap();
    s.handle_input(&server_command(
        &w,
        &on_status("status", "NetStream.Publish.Idle", "idle", true),
    ))
    .unwrap();
    assert_eq!(s.phase(), Phase::Published);
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&Event::Status {
        code: "NetStream.Publish.Idle".into(),
        description: "idle".into()
    }));
}

#[test]
fn a_first_type_1_header_from_the_server_is_taken() {
    // The server of issue 11: connect's _result on chunk stream 3 with a
    // type-1 header (no previous message there).
    let (mut s, _) = connected();
    let body = amf0::encode_all(&[
        Value::str("_result"),
        Value::Number(1.0),
        Value::Null,
        Value::Object(vec![(
            "code".into(),
            Value::str("NetConnection.Connect.Success"),
        )]),
    ]);
    let mut bytes = vec![0x43, 0, 0, 0];
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    bytes.push(msg_type::COMMAND_AMF0);
    bytes.extend_from_slice(&body);
    s.handle_input(&bytes).unwrap();
    assert_eq!(s.phase(), Phase::CreatingStream);
}
