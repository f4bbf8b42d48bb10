//! AMF0, the encoding of RTMP commands and FLV script data (Adobe "Action
//! Message Format -- AMF 0", 2007): the types publishing needs, both ways.
//!
//! Pure code. The decoder is bounded: it reads only the slice it is given
//! (whose size the chunk reader caps), never allocates ahead of the bytes it
//! has seen, and refuses nesting deeper than [`MAX_DEPTH`].

use std::fmt;

/// Deepest nesting of objects and arrays the decoder accepts.
pub const MAX_DEPTH: usize = 16;

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
}

/// One AMF0 value. Objects keep their properties in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch (the time zone field is dropped).
    Date(f64),
}

impl Value {
    /// Shorthand for a string value.
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Object(props) | Self::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// A string property of an object or ECMA array.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Appends the encoding of this value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Number(n) => {
                out.push(marker::NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Self::Boolean(b) => out.extend_from_slice(&[marker::BOOLEAN, u8::from(*b)]),
            Self::String(s) => {
                if s.len() <= usize::from(u16::MAX) {
                    out.push(marker::STRING);
                    put_short_string(out, s);
                } else {
                    out.push(marker::LONG_STRING);
                    let bytes = &s.as_bytes()[..s.len().min(u32::MAX as usize)];
                    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
            Self::Object(props) => {
                out.push(marker::OBJECT);
                put_properties(out, props);
            }
            Self::Null => out.push(marker::NULL),
            Self::Undefined => out.push(marker::UNDEFINED),
            Self::EcmaArray(props) => {
                out.push(marker::ECMA_ARRAY);
                out.extend_from_slice(&(props.len() as u32).to_be_bytes());
                put_properties(out, props);
            }
            Self::StrictArray(items) => {
                out.push(marker::STRICT_ARRAY);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for v in items {
                    v.encode(out);
                }
            }
            Self::Date(ms) => {
                out.push(marker::DATE);
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
}

/// Keys and short strings: a u16 length, then UTF-8 (cut at 65535 bytes,
/// on a character boundary).
fn put_short_string(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (k, v) in props {
        put_short_string(out, k);
        v.encode(out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}

/// Encodes a sequence of values (a command, a data message).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// What was wrong with AMF0 input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amf0ErrorKind {
    /// The input ended inside a value.
    Truncated,
    /// A type marker this decoder does not know (or one AMF0 reserves).
    UnknownMarker(u8),
    /// Objects or arrays nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// An AMF0 decoding error and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amf0Error {
    pub offset: usize,
    pub kind: Amf0ErrorKind,
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Amf0ErrorKind::Truncated => write!(f, "AMF0 value cut short at byte {}", self.offset),
            Amf0ErrorKind::UnknownMarker(m) => {
                write!(f, "unknown AMF0 type 0x{m:02x} at byte {}", self.offset)
            }
            Amf0ErrorKind::TooDeep => write!(
                f,
                "AMF0 values nested deeper than {MAX_DEPTH} at byte {}",
                self.offset
            ),
        }
    }
}

impl std::error::Error for Amf0Error {}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, kind: Amf0ErrorKind) -> Amf0Error {
        Amf0Error {
            offset: self.pos,
            kind,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        if self.data.len() - self.pos < n {
            return Err(self.err(Amf0ErrorKind::Truncated));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(b.try_into().unwrap_or_default()))
    }

    fn string(&mut self, len: usize) -> Result<String, Amf0Error> {
        // Lenient: servers put odd bytes in descriptions; keep what we can.
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            marker::NUMBER => Value::Number(self.f64()?),
            marker::BOOLEAN => Value::Boolean(self.u8()? != 0),
            marker::STRING => {
                let n = self.u16()?;
                Value::String(self.string(usize::from(n))?)
            }
            marker::LONG_STRING => {
                let n = self.u32()?;
                Value::String(self.string(n as usize)?)
            }
            marker::NULL => Value::Null,
            marker::UNDEFINED => Value::Undefined,
            marker::OBJECT => Value::Object(self.properties(depth + 1)?),
            marker::ECMA_ARRAY => {
                // The count is a hint (encoders disagree on it); the end
                // marker ends the array.
                self.u32()?;
                Value::EcmaArray(self.properties(depth + 1)?)
            }
            marker::STRICT_ARRAY => {
                if depth + 1 > MAX_DEPTH {
                    return Err(self.err(Amf0ErrorKind::TooDeep));
                }
                let n = self.u32()?;
                // No allocation ahead of the input: each value is >= 1 byte.
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            marker::DATE => {
                let ms = self.f64()?;
                self.take(2)?;
                Value::Date(ms)
            }
            other => {
                return Err(Amf0Error {
                    offset: at,
                    kind: Amf0ErrorKind::UnknownMarker(other),
                });
            }
        })
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(self.err(Amf0ErrorKind::TooDeep));
        }
        let mut props = Vec::new();
        loop {
            let n = self.u16()?;
            if n == 0 && self.data.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.string(usize::from(n))?;
            let v = self.value(depth)?;
            props.push((key, v));
        }
    }
}

/// Decodes one value at the start of `data`; returns it and its length.
pub fn decode(data: &[u8]) -> Result<(Value, usize), Amf0Error> {
    let mut r = Reader { data, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes every value in `data` (a command or data message body).
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut r = Reader { data, pos: 0 };
    let mut values = Vec::new();
    while r.pos < data.len() {
        values.push(r.value(0)?);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Value> {
        vec![
            Value::str("_result"),
            Value::Number(1.0),
            Value::Object(vec![
                ("fmsVer".into(), Value::str("FMS/3,0,1,123")),
                ("capabilities".into(), Value::Number(31.0)),
            ]),
            Value::Object(vec![
                ("level".into(), Value::str("status")),
                ("code".into(), Value::str("NetConnection.Connect.Success")),
                ("objectEncoding".into(), Value::Number(0.0)),
                (
                    "data".into(),
                    Value::EcmaArray(vec![("version".into(), Value::str("3,5,1,525"))]),
                ),
            ]),
            Value::Null,
            Value::Undefined,
            Value::Boolean(true),
            Value::StrictArray(vec![Value::Number(-2.5), Value::str("é")]),
            Value::Date(1.7e12),
            Value::str("x".repeat(70_000)),
        ]
    }

    #[test]
    fn round_trips() {
        let values = sample();
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
        let (first, n) = decode(&bytes).unwrap();
        assert_eq!(first, Value::str("_result"));
        assert_eq!(n, 3 + "_result".len());
        assert_eq!(
            values[3].get_str("code"),
            Some("NetConnection.Connect.Success")
        );
    }

    #[test]
    fn known_encoding() {
        // "connect", 1.0, {app: "live"} as ffmpeg sends it.
        let bytes = encode_all(&[
            Value::str("connect"),
            Value::Number(1.0),
            Value::Object(vec![("app".into(), Value::str("live"))]),
        ]);
        let expected: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x00, 0x3f, 0xf0, 0, 0, 0,
            0, 0, 0, 0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e',
            0x00, 0x00, 0x09,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_all(&sample()[..9]);
        for cut in 0..bytes.len() {
            let r = decode_all(&bytes[..cut]);
            // A cut between two values decodes the values before it.
            if let Err(e) = r {
                assert_eq!(e.kind, Amf0ErrorKind::Truncated, "cut at {cut}: {e}");
                assert!(e.offset <= cut);
            }
        }
    }

    #[test]
    fn bad_input_is_refused_with_its_position() {
        let e = decode_all(&[0x05, 0x11]).unwrap_err();
        assert_eq!(e.kind, Amf0ErrorKind::UnknownMarker(0x11));
        assert_eq!(e.offset, 1);
        assert!(e.to_string().contains("0x11"), "{e}");
        // A long string claiming 4 GiB in a few bytes: truncated, no allocation.
        let e = decode_all(&[0x0c, 0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert_eq!(e.kind, Amf0ErrorKind::Truncated);
        // A strict array claiming 4 billion items.
        let e = decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(e.kind, Amf0ErrorKind::Truncated);
        // Nesting bombs are cut off.
        let mut deep = Vec::new();
        for _ in 0..1000 {
            deep.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        assert_eq!(decode_all(&deep).unwrap_err().kind, Amf0ErrorKind::TooDeep);
        let deep = [0x0a, 0, 0, 0, 1].repeat(1000);
        assert_eq!(decode_all(&deep).unwrap_err().kind, Amf0ErrorKind::TooDeep);
    }
}
