//! The publish session driven with no sockets: against the replies nginx-rtmp
//! 1.2.2 (Debian 12) really sent to this session (recorded through a proxy,
//! after the handshake), and against hand-made server messages.

use super::*;
use crate::rtmp::chunk::{ChunkWriter, msg_type};

mod servers;

/// What nginx-rtmp sent after S0+S1+S2 to a publisher of `live/cam2`:
/// Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size 4096,
/// `_result` for connect (txn 1), `_result` for createStream (txn 4, stream
/// 1), onStatus NetStream.Publish.Start, and (after our FCUnpublish and
/// deleteStream) onStatus NetStream.Unpublish.Success.
const NGINX: &[u8] = include_bytes!("nginx-publish.bin");
/// Where the Unpublish.Success message starts in [`NGINX`].
const NGINX_UNPUBLISH_AT: usize = 409;
/// Where the Publish.Start message starts in [`NGINX`].
const NGINX_PUBLISH_START_AT: usize = 292;

fn params() -> PublishParams {
    PublishParams {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1:19352/live".into(),
        stream: "cam2".into(),
    }
}

fn server_handshake() -> Vec<u8> {
    let mut s = vec![3];
    s.extend((0..2 * handshake::PACKET_SIZE).map(|i| (i % 251) as u8));
    s
}

/// Parses what the client sent (after C0+C1 and C2) into messages,
/// following its Set Chunk Size.
struct ClientView {
    reader: ChunkReader,
    skip: usize,
}

impl ClientView {
    fn new() -> Self {
        Self {
            reader: ChunkReader::new(Limits {
                max_message: 1 << 20,
                max_chunk_streams: 16,
            }),
            skip: 1 + 2 * handshake::PACKET_SIZE,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Message> {
        let n = self.skip.min(bytes.len());
        self.skip -= n;
        bytes = &bytes[n..];
        self.reader.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = self.reader.next_message().unwrap() {
            if m.type_id == msg_type::SET_CHUNK_SIZE {
                let n = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                self.reader.set_chunk_size(n).unwrap();
            }
            out.push(m);
        }
        out
    }
}

fn command(m: &Message) -> Vec<Value> {
    assert_eq!(m.type_id, msg_type::COMMAND_AMF0, "{m:?}");
    amf0::decode_all(&m.payload).unwrap()
}

fn name(m: &Message) -> String {
    command(m)[0].as_str().unwrap().to_string()
}

/// Runs the session through the recorded replies, feeding them in pieces
/// of `piece` bytes; returns every client message and the session.
fn run_against_nginx(piece: usize) -> (Vec<Message>, PublishSession) {
    let mut s = PublishSession::new(params(), &[0x11; handshake::PACKET_SIZE - 8]);
    assert_eq!(s.phase(), Phase::Handshake);
    let mut view = ClientView::new();
    let c0c1 = s.take_output();
    assert_eq!(c0c1.len(), 1 + handshake::PACKET_SIZE);
    assert_eq!(c0c1[0], 3);
    let mut sent = view.feed(&c0c1);
    s.handle_input(&server_handshake()).unwrap();
    assert_eq!(s.phase(), Phase::Connecting);
    let out = s.take_output();
    // C2 echoes S1.
    assert_eq!(
        &out[8..handshake::PACKET_SIZE],
        &server_handshake()[9..1 + handshake::PACKET_SIZE]
    );
    sent.extend(view.feed(&out));
    for chunk in NGINX[..NGINX_UNPUBLISH_AT].chunks(piece) {
        s.handle_input(chunk).unwrap();
        sent.extend(view.feed(&s.take_output()));
    }
    (sent, s)
}

#[test]
fn publishes_against_recorded_nginx_replies() {
    let (mut sent, mut s) = run_against_nginx(usize::MAX);
    assert_eq!(s.phase(), Phase::Published);
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(events, vec![Event::Connected, Event::PublishStarted]);

    // Metadata and video go on stream 1, then a polite close.
    let meta = crate::flv::Metadata {
        width: 320,
        height: 240,
        framerate: 30.0,
        videodatarate: 1000,
        encoder: "edgestream".into(),
        stream_name: None,
        audio: false,
    };
    s.send_metadata(&meta.script_body(true)).unwrap();
    s.send_video(0, &[0x17, 0, 0, 0, 0, 1, 0x42]).unwrap();
    s.send_video(33, &vec![0x27; 10_000]).unwrap();
    let mut view = ClientView {
        reader: ChunkReader::new(Limits {
            max_message: 1 << 20,
            max_chunk_streams: 16,
        }),
        skip: 0,
    };
    // Continue with the client's chunk size (4096).
    view.reader.set_chunk_size(4096).unwrap();
    let media = view.feed(&s.take_output());
    s.close();
    assert_eq!(s.phase(), Phase::Closed);
    let goodbye = view.feed(&s.take_output());
    // nginx's answer to the goodbye is taken quietly.
    s.handle_input(&NGINX[NGINX_UNPUBLISH_AT..]).unwrap();
    assert!(!s.has_output());

    let summary: Vec<(u8, u32, u32, String)> = sent
        .drain(..)
        .chain(media)
        .chain(goodbye)
        .map(|m| {
            let what = match m.type_id {
                msg_type::COMMAND_AMF0 => name(&m),
                msg_type::DATA_AMF0 => amf0::decode_all(&m.payload).unwrap()[0]
                    .as_str()
                    .unwrap()
                    .to_string(),
                msg_type::VIDEO => format!("video {} bytes", m.payload.len()),
                msg_type::SET_CHUNK_SIZE | msg_type::WINDOW_ACK_SIZE => {
                    u32::from_be_bytes(m.payload[..4].try_into().unwrap()).to_string()
                }
                _ => String::new(),
            };
            (m.type_id, m.stream_id, m.timestamp, what)
        })
        .collect();
    let expected: Vec<(u8, u32, u32, String)> = vec![
        (msg_type::SET_CHUNK_SIZE, 0, 0, "4096".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "connect".into()),
        (msg_type::WINDOW_ACK_SIZE, 0, 0, "2500000".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "releaseStream".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "FCPublish".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "createStream".into()),
        (msg_type::COMMAND_AMF0, 1, 0, "publish".into()),
        (msg_type::DATA_AMF0, 1, 0, "@setDataFrame".into()),
        (msg_type::VIDEO, 1, 0, "video 7 bytes".into()),
        (msg_type::VIDEO, 1, 33, "video 10000 bytes".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "FCUnpublish".into()),
        (msg_type::COMMAND_AMF0, 0, 0, "deleteStream".into()),
    ];
    assert_eq!(summary, expected);
}

#[test]
fn command_arguments_are_what_servers_expect() {
    let (sent, _) = run_against_nginx(usize::MAX);
    let connect = command(&sent[1]);
    assert_eq!(connect[1], Value::Number(1.0));
    let obj = &connect[2];
    assert_eq!(obj.get_str("app"), Some("live"));
    assert_eq!(obj.get_str("type"), Some("nonprivate"));
    assert_eq!(obj.get_str("tcUrl"), Some("rtmp://127.0.0.1:19352/live"));
    assert!(obj.get_str("flashVer").unwrap().starts_with("FMLE/3.0"));
    assert!(
        FLASH_VER.len() <= 32,
        "nginx-rtmp keeps 32 bytes of flashVer"
    );
    for i in [3, 4] {
        let c = command(&sent[i]);
        assert_eq!((&c[2], &c[3]), (&Value::Null, &Value::str("cam2")));
    }
    let publish = command(&sent[6]);
    assert_eq!(
        &publish[2..],
        &[Value::Null, Value::str("cam2"), Value::str("live")]
    );
}

#[test]
fn recorded_replies_split_at_every_byte_give_the_same_session() {
    let (whole, _) = run_against_nginx(usize::MAX);
    for piece in [1, 2, 3, 7, 64, 200] {
        let (sent, s) = run_against_nginx(piece);
        assert_eq!(s.phase(), Phase::Published, "pieces of {piece}");
        assert_eq!(sent, whole, "pieces of {piece}");
    }
}

/// A session past the handshake, and a writer for server messages.
fn connected() -> (PublishSession, ChunkWriter) {
    let mut s = PublishSession::new(params(), &[0; handshake::PACKET_SIZE - 8]);
    s.take_output();
    s.handle_input(&server_handshake()).unwrap();
    s.take_output();
    (s, ChunkWriter::default())
}

fn server_command(w: &ChunkWriter, values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(
        3,
        msg_type::COMMAND_AMF0,
        0,
        0,
        &amf0::encode_all(values),
        &mut out,
    );
    out
}

fn status(code: &str, description: &str) -> Vec<Value> {
    vec![
        Value::str("onStatus"),
        Value::Number(0.0),
        Value::Null,
        Value::Object(vec![
            ("level".into(), Value::str("error")),
            ("code".into(), Value::str(code)),
            ("description".into(), Value::str(description)),
        ]),
    ]
}

#[test]
fn refusals_are_errors_that_say_which_step() {
    let (mut s, w) = connected();
    let e = s
        .handle_input(&server_command(
            &w,
            &[
                Value::str("_error"),
                Value::Number(1.0),
                Value::Null,
                Value::Object(vec![
                    ("code".into(), Value::str("NetConnection.Connect.Rejected")),
                    ("description".into(), Value::str("bad app")),
                ]),
            ],
        ))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "connect refused: NetConnection.Connect.Rejected (bad app)"
    );

    // nginx-rtmp's answer when the name is taken.
    let (mut s, w) = connected();
    // Replay nginx up to its Publish.Start, then refuse instead.
    s.handle_input(&NGINX[..NGINX_PUBLISH_START_AT]).unwrap();
    assert_eq!(s.phase(), Phase::Publishing);
    let e = s
        .handle_input(&server_command(
            &w,
            &status("NetStream.Publish.BadName", "Already publishing"),
        ))
        .unwrap_err();
    assert!(e.is_already_publishing(), "{e}");
    assert!(
        e.to_string()
            .contains("publish refused: NetStream.Publish.BadName"),
        "{e}"
    );

    let (mut s, w) = connected();
    let e = s
        .handle_input(&server_command(
            &w,
            &[Value::str("close"), Value::Number(0.0)],
        ))
        .unwrap_err();
    assert!(e.to_string().contains("close"), "{e}");
}

#[test]
fn acknowledges_the_total_received_and_answers_pings() {
    let (mut s, w) = connected();
    let mut bytes = Vec::new();
    w.write(
        2,
        msg_type::WINDOW_ACK_SIZE,
        0,
        0,
        &50u32.to_be_bytes(),
        &mut bytes,
    );
    w.write(
        2,
        msg_type::USER_CONTROL,
        0,
        0,
        &[0, 6, 0, 0, 0x30, 0x39],
        &mut bytes,
    );
    s.handle_input(&bytes).unwrap();
    let mut view = ClientView {
        reader: ChunkReader::new(Limits::default()),
        skip: 0,
    };
    view.reader.set_chunk_size(4096).unwrap();
    let out = view.feed(&s.take_output());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_id, msg_type::USER_CONTROL);
    assert_eq!(out[0].payload, vec![0, 7, 0, 0, 0x30, 0x39]);

    // Over 50 bytes received in all: an acknowledgement with the total
    // (not the bytes since the last one).
    let mut more = Vec::new();
    w.write(
        3,
        msg_type::COMMAND_AMF0,
        0,
        0,
        &amf0::encode_all(&[Value::str("onBWDone"), Value::Number(0.0), Value::Null]),
        &mut more,
    );
    let total = (bytes.len() + more.len()) as u32;
    s.handle_input(&more).unwrap();
    let out = view.feed(&s.take_output());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_id, msg_type::ACKNOWLEDGEMENT);
    assert_eq!(out[0].payload, total.to_be_bytes().to_vec());
    s.handle_input(&more).unwrap();
    assert!(
        !s.has_output(),
        "next acknowledgement only after another window"
    );
}

#[test]
fn bad_server_input_is_an_error_not_a_panic() {
    let mut s = PublishSession::new(params(), &[0; handshake::PACKET_SIZE - 8]);
    let e = s.handle_input(b"HTTP/1.0 200 OK\r\n").unwrap_err();
    assert!(matches!(e, SessionError::Handshake(_)), "{e}");

    // A huge message is refused before it is buffered.
    let (mut s, _) = connected();
    let e = s
        .handle_input(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0])
        .unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");

    // A command that is not AMF0.
    let (mut s, w) = connected();
    let mut bytes = Vec::new();
    w.write(3, msg_type::COMMAND_AMF0, 0, 0, &[0x42, 1, 2], &mut bytes);
    let e = s.handle_input(&bytes).unwrap_err();
    assert!(e.to_string().contains("bad command"), "{e}");

    // Media before publishing.
    let (mut s, _) = connected();
    assert_eq!(s.send_video(0, &[1]), Err(SessionError::NotPublishing));

    // Random bytes after a good handshake never panic.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let (mut s, _) = connected();
        let junk: Vec<u8> = (0..rng.usize(1..400)).map(|_| rng.u8(..)).collect();
        let _ = s.handle_input(&junk);
    }
}
