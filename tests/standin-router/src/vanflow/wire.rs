//! Vanflow messages byte for byte as skupper-router 3.5.1 composes them (`src/vanflow.c`,
//! captures in the reference's `vanflow-capture/`): properties list32 with exactly message-id
//! (AMQP `long`: smalllong up to 127), user-id null, `to` and `subject`; application-properties
//! map32 with symbol keys; an amqp-value body (null, or a list32 of map32 records with uint keys,
//! ulong numbers and str8/str32 strings).
//!
//! fe2o3-amqp's typed `Message` cannot carry a `long` message-id or symbol keys, so the stand-in
//! sends a placeholder message whose amqp-value body is a binary holding [`MARKER`] and the real
//! message, and [`RawFrames`] replaces each such transfer payload with the real message on its way
//! to the socket. The same wrapper, reading, turns each incoming transfer's payload into such a
//! binary body, so that a fe2o3-amqp test client can see the router's raw bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A record attribute value: the router sends only strings and ulong numbers in records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Str(String),
    Num(u64),
}

/// One record: type code and attributes (identity is attribute 1, put in by the caller).
pub type RecordMap = (u32, Vec<(u32, Attr)>);

/// Strings longer than this are cut (the router's limit).
const MAX_STRING: usize = 300;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = if s.chars().count() > MAX_STRING {
        s.chars().take(MAX_STRING).collect::<String>()
    } else {
        s.to_string()
    };
    let bytes = s.as_bytes();
    if bytes.len() <= 255 {
        out.push(0xa1);
        out.push(bytes.len() as u8);
    } else {
        out.push(0xb1);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

fn put_symbol(out: &mut Vec<u8>, s: &str) {
    out.push(0xa3);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put_ulong(out: &mut Vec<u8>, v: u64) {
    match v {
        0 => out.push(0x44),
        1..=255 => out.extend_from_slice(&[0x53, v as u8]),
        _ => {
            out.push(0x80);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn put_uint(out: &mut Vec<u8>, v: u32) {
    match v {
        0 => out.push(0x43),
        1..=255 => out.extend_from_slice(&[0x52, v as u8]),
        _ => {
            out.push(0x70);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    if (-128..=127).contains(&v) {
        out.extend_from_slice(&[0x55, v as i8 as u8]);
    } else {
        out.push(0x81);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A list32 or map32 (`code`) of `count` elements already encoded in `body`.
fn put_compound32(out: &mut Vec<u8>, code: u8, count: usize, body: &[u8]) {
    out.push(code);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&(count as u32).to_be_bytes());
    out.extend_from_slice(body);
}

fn properties(out: &mut Vec<u8>, message_id: i64, to: &str, subject: &str) {
    let mut fields = Vec::new();
    put_long(&mut fields, message_id);
    fields.push(0x40);
    put_str(&mut fields, to);
    put_str(&mut fields, subject);
    out.extend_from_slice(&[0x00, 0x53, 0x73]);
    put_compound32(out, 0xd0, 4, &fields);
}

fn application_properties(out: &mut Vec<u8>, entries: &[(&str, Attr)], small_uint_v: bool) {
    let mut body = Vec::new();
    for (key, value) in entries {
        put_symbol(&mut body, key);
        match value {
            Attr::Str(s) => put_str(&mut body, s),
            // `v` is a uint, every other number a ulong.
            Attr::Num(n) if small_uint_v && *key == "v" => put_uint(&mut body, *n as u32),
            Attr::Num(n) => put_ulong(&mut body, *n),
        }
    }
    out.extend_from_slice(&[0x00, 0x53, 0x74]);
    put_compound32(out, 0xd1, entries.len() * 2, &body);
}

const NULL_BODY: [u8; 4] = [0x00, 0x53, 0x77, 0x40];

/// BEACON to `mc/sfe.all`.
pub fn beacon(message_id: i64, source_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    properties(&mut out, message_id, super::BEACON_ADDRESS, "BEACON");
    application_properties(
        &mut out,
        &[
            ("v", Attr::Num(1)),
            ("sourceType", Attr::Str("ROUTER".into())),
            ("id", Attr::Str(source_id.into())),
            ("address", Attr::Str(format!("mc/sfe.{source_id}"))),
            ("direct", Attr::Str(format!("sfe.{source_id}"))),
        ],
        true,
    );
    out.extend_from_slice(&NULL_BODY);
    out
}

/// HEARTBEAT to `mc/sfe.<id>`; `now` in µs since the epoch.
pub fn heartbeat(message_id: i64, source_id: &str, now: u64) -> Vec<u8> {
    let mut out = Vec::new();
    properties(
        &mut out,
        message_id,
        &format!("mc/sfe.{source_id}"),
        "HEARTBEAT",
    );
    application_properties(
        &mut out,
        &[
            ("v", Attr::Num(1)),
            ("now", Attr::Num(now)),
            ("id", Attr::Str(source_id.into())),
        ],
        true,
    );
    out.extend_from_slice(&NULL_BODY);
    out
}

/// RECORD to `to`, one map per record: key 0 the type (uint), then the attributes in the
/// given order (the caller sorts them), numbers as ulong, strings as str8/str32.
pub fn record(message_id: i64, to: &str, records: &[RecordMap]) -> Vec<u8> {
    let mut out = Vec::new();
    properties(&mut out, message_id, to, "RECORD");
    let mut list = Vec::new();
    for (record_type, attrs) in records {
        let mut map = Vec::new();
        put_uint(&mut map, 0);
        put_uint(&mut map, *record_type);
        for (key, value) in attrs {
            put_uint(&mut map, *key);
            match value {
                Attr::Str(s) => put_str(&mut map, s),
                Attr::Num(n) => put_ulong(&mut map, *n),
            }
        }
        put_compound32(&mut list, 0xd1, (attrs.len() + 1) * 2, &map);
    }
    out.extend_from_slice(&[0x00, 0x53, 0x77]);
    put_compound32(&mut out, 0xd0, records.len(), &list);
    out
}

// ---------------------------------------------------------------------------------------------
// Decoding (lenient; for FLUSH requests, forwarded messages and tests)
// ---------------------------------------------------------------------------------------------

/// The length of the AMQP value at the start of `b` (described values included).
pub fn value_len(b: &[u8]) -> Option<usize> {
    let code = *b.first()?;
    let fixed = |n: usize| (b.len() > n).then_some(1 + n);
    let var = |width: usize| {
        let len = match width {
            1 => *b.get(1)? as usize,
            _ => u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
        };
        let total = 1 + width + len;
        (b.len() >= total).then_some(total)
    };
    match code {
        0x00 => {
            let d = value_len(&b[1..])?;
            let v = value_len(&b[1 + d..])?;
            Some(1 + d + v)
        }
        0x40..=0x45 => Some(1),
        0x50..=0x56 => fixed(1),
        0x60..=0x6f => fixed(2),
        0x70..=0x7f => fixed(4),
        0x80..=0x8f => fixed(8),
        0x90..=0x9f => fixed(16),
        0xa0..=0xaf | 0xc0..=0xcf | 0xe0..=0xef => var(1),
        0xb0..=0xbf | 0xd0..=0xdf | 0xf0..=0xff => var(4),
        _ => None,
    }
}

/// The sections of a bare message: (descriptor code, the section's value bytes).
pub fn sections(message: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut rest = message;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest[0] != 0x00 {
            return None;
        }
        let (code, dlen) = match rest.get(1)? {
            0x53 => (u64::from(*rest.get(2)?), 2),
            0x80 => (u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?), 9),
            _ => return None,
        };
        let vlen = value_len(&rest[1 + dlen..])?;
        out.push((code, &rest[1 + dlen..1 + dlen + vlen]));
        rest = &rest[1 + dlen + vlen..];
    }
    Some(out)
}

/// The elements of a list (list0/list8/list32) as byte slices.
pub fn list_items(b: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut at) = match *b.first()? {
        0x45 => return Some(Vec::new()),
        0xc0 => (*b.get(2)? as usize, 3),
        0xd0 => (
            u32::from_be_bytes(b.get(5..9)?.try_into().ok()?) as usize,
            9,
        ),
        _ => return None,
    };
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let len = value_len(b.get(at..)?)?;
        items.push(&b[at..at + len]);
        at += len;
    }
    Some(items)
}

/// The entries of a map (map8/map32) as a flat list of byte slices (key, value, …).
pub fn map_items(b: &[u8]) -> Option<Vec<&[u8]>> {
    match *b.first()? {
        0xc1 => {
            let mut list = b.to_vec();
            list[0] = 0xc0;
            list_items(&list).map(|items| {
                let mut at = 3;
                items
                    .iter()
                    .map(|i| {
                        let s = &b[at..at + i.len()];
                        at += i.len();
                        s
                    })
                    .collect()
            })
        }
        0xd1 => {
            let count = u32::from_be_bytes(b.get(5..9)?.try_into().ok()?) as usize;
            let mut items = Vec::with_capacity(count);
            let mut at = 9;
            for _ in 0..count {
                let len = value_len(b.get(at..)?)?;
                items.push(&b[at..at + len]);
                at += len;
            }
            Some(items)
        }
        _ => None,
    }
}

/// A string or symbol value.
pub fn as_str(b: &[u8]) -> Option<String> {
    let (start, len) = match *b.first()? {
        0xa1 | 0xa3 => (2, *b.get(1)? as usize),
        0xb1 | 0xb3 => (
            5,
            u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as usize,
        ),
        _ => return None,
    };
    String::from_utf8(b.get(start..start + len)?.to_vec()).ok()
}

/// Any unsigned or signed integer value as u64 (negative ones refused).
pub fn as_u64(b: &[u8]) -> Option<u64> {
    Some(match *b.first()? {
        0x43 | 0x44 => 0,
        0x50 | 0x52 | 0x53 => u64::from(*b.get(1)?),
        0x55 => u64::try_from(*b.get(1)? as i8).ok()?,
        0x60 => u64::from(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?)),
        0x70 => u64::from(u32::from_be_bytes(b.get(1..5)?.try_into().ok()?)),
        0x80 => u64::from_be_bytes(b.get(1..9)?.try_into().ok()?),
        0x81 => u64::try_from(i64::from_be_bytes(b.get(1..9)?.try_into().ok()?)).ok()?,
        _ => return None,
    })
}

/// The message-id, `to` and `subject` of a message (message-id of any integer type).
pub fn header_of(message: &[u8]) -> Option<(Option<u64>, Option<String>, Option<String>)> {
    let sections = sections(message)?;
    let (_, props) = sections.iter().find(|(code, _)| *code == 0x73)?;
    let items = list_items(props)?;
    let id = items.first().and_then(|b| as_u64(b));
    let to = items.get(2).and_then(|b| as_str(b));
    let subject = items.get(3).and_then(|b| as_str(b));
    Some((id, to, subject))
}

// ---------------------------------------------------------------------------------------------
// Transfer payload rewriting
// ---------------------------------------------------------------------------------------------

/// Opens the binary of a placeholder body (see the module docs).
pub const MARKER: &[u8] = b"\x00standin-vanflow-raw\x00";

/// The placeholder body's binary for a raw message.
pub fn placeholder(message: &[u8]) -> Vec<u8> {
    let mut b = MARKER.to_vec();
    b.extend_from_slice(message);
    b
}

/// Which transfer payloads [`RawFrames`] rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Nothing (read side of the router).
    None,
    /// Writing: a placeholder payload becomes the raw message it holds.
    UnwrapPlaceholders,
    /// Reading: every single-frame transfer payload becomes an amqp-value binary holding it.
    WrapAsBinary,
}

/// The payload of a transfer frame body, and whether `more` is set.
fn transfer_payload(body: &[u8]) -> Option<(usize, bool)> {
    if body.first() != Some(&0x00) {
        return None;
    }
    let (code, dlen) = match body.get(1)? {
        0x53 => (u64::from(*body.get(2)?), 2),
        0x80 => (u64::from_be_bytes(body.get(2..10)?.try_into().ok()?), 9),
        _ => return None,
    };
    if code != 0x14 {
        return None;
    }
    let list = &body[1 + dlen..];
    let len = value_len(list)?;
    let items = list_items(&list[..len])?;
    let more = matches!(items.get(5).map(|b| b.first()), Some(Some(0x41)))
        || items.get(5).is_some_and(|b| b == &[0x56, 0x01]);
    Some((1 + dlen + len, more))
}

fn rewrite_frame(frame: &[u8], how: Rewrite) -> Option<Vec<u8>> {
    if how == Rewrite::None || frame.len() < 8 || frame[5] != 0 {
        return None;
    }
    let doff = usize::from(frame[4]) * 4;
    let body = frame.get(doff..)?;
    let (performative, more) = transfer_payload(body)?;
    let payload = &body[performative..];
    let new_payload = match how {
        Rewrite::UnwrapPlaceholders => {
            let rest = payload.strip_prefix(&[0x00, 0x53, 0x77][..])?;
            let (start, len) = match rest.first()? {
                0xa0 => (2, *rest.get(1)? as usize),
                0xb0 => (
                    5,
                    u32::from_be_bytes(rest.get(1..5)?.try_into().ok()?) as usize,
                ),
                _ => return None,
            };
            let binary = rest.get(start..)?;
            if binary.len() != len {
                return None;
            }
            binary.strip_prefix(MARKER)?.to_vec()
        }
        Rewrite::WrapAsBinary => {
            if more || payload.is_empty() {
                return None;
            }
            let mut p = vec![0x00, 0x53, 0x77, 0xb0];
            p.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            p.extend_from_slice(payload);
            p
        }
        Rewrite::None => return None,
    };
    let mut out = Vec::with_capacity(doff + performative + new_payload.len());
    out.extend_from_slice(&frame[..doff + performative]);
    out.extend_from_slice(&new_payload);
    let size = out.len() as u32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Some(out)
}

/// Moves whole units (protocol headers, frames) from `input` to `output`, rewritten.
fn reframe(input: &mut Vec<u8>, output: &mut Vec<u8>, how: Rewrite) {
    let mut at = 0;
    loop {
        let rest = &input[at..];
        if rest.len() >= 4 && &rest[..4] == b"AMQP" {
            if rest.len() < 8 {
                break;
            }
            output.extend_from_slice(&rest[..8]);
            at += 8;
            continue;
        }
        if rest.len() < 4 {
            break;
        }
        let size = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if size < 8 {
            // Not a frame: pass everything through untouched.
            output.extend_from_slice(rest);
            at = input.len();
            break;
        }
        if rest.len() < size {
            break;
        }
        let frame = &rest[..size];
        match rewrite_frame(frame, how) {
            Some(new) => output.extend_from_slice(&new),
            None => output.extend_from_slice(frame),
        }
        at += size;
    }
    input.drain(..at);
}

/// An AMQP transport stream that rewrites transfer payloads (see [`Rewrite`]).
#[derive(Debug)]
pub struct RawFrames<S> {
    inner: S,
    read: Rewrite,
    write: Rewrite,
    read_raw: Vec<u8>,
    read_ready: Vec<u8>,
    read_eof: bool,
    write_raw: Vec<u8>,
    write_ready: Vec<u8>,
}

impl<S> RawFrames<S> {
    pub fn new(inner: S, read: Rewrite, write: Rewrite) -> RawFrames<S> {
        RawFrames {
            inner,
            read,
            write,
            read_raw: Vec::new(),
            read_ready: Vec::new(),
            read_eof: false,
            write_raw: Vec::new(),
            write_ready: Vec::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> RawFrames<S> {
    /// Writes what is ready to the inner stream; Ready(Ok) once all of it is written.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_ready.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.write_ready) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.write_ready.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RawFrames<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.read_ready.is_empty() {
                let n = this.read_ready.len().min(buf.remaining());
                buf.put_slice(&this.read_ready[..n]);
                this.read_ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Ready(Ok(())) => {
                    let filled = chunk_buf.filled();
                    if filled.is_empty() {
                        this.read_eof = true;
                        let rest = std::mem::take(&mut this.read_raw);
                        this.read_ready.extend_from_slice(&rest);
                    } else {
                        this.read_raw.extend_from_slice(filled);
                        reframe(&mut this.read_raw, &mut this.read_ready, this.read);
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RawFrames<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        if this.write_ready.len() > 1 << 20 {
            return Poll::Pending;
        }
        this.write_raw.extend_from_slice(buf);
        reframe(&mut this.write_raw, &mut this.write_ready, this.write);
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // A partial unit left over is passed on as it is.
        let rest = std::mem::take(&mut this.write_raw);
        this.write_ready.extend_from_slice(&rest);
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_amqp::Value;

    const CAPTURES: &str = "/work/shared/reference/vanflow-capture";

    fn capture(name: &str) -> Option<Vec<u8>> {
        std::fs::read(format!("{CAPTURES}/{name}")).ok()
    }

    /// Each section decoded with serde_amqp's Value, which keeps AMQP types apart (long vs
    /// ulong, symbol vs string, uint vs ulong), plus the compound encodings (list32/map32).
    fn shape(message: &[u8]) -> Vec<(u64, Value, Vec<u8>)> {
        sections(message)
            .expect("sections")
            .into_iter()
            .map(|(code, bytes)| {
                let value: Value = serde_amqp::from_slice(bytes).expect("value");
                (code, value, compound_codes(bytes))
            })
            .collect()
    }

    /// The format codes of every list and map, recursively (the router uses list32/map32).
    fn compound_codes(b: &[u8]) -> Vec<u8> {
        let mut codes = Vec::new();
        match b.first() {
            Some(0xc0 | 0xd0 | 0x45) => {
                codes.push(b[0]);
                for item in list_items(b).unwrap() {
                    codes.extend(compound_codes(item));
                }
            }
            Some(0xc1 | 0xd1) => {
                codes.push(b[0]);
                for item in map_items(b).unwrap() {
                    codes.extend(compound_codes(item));
                }
            }
            _ => {}
        }
        codes
    }

    /// Same value types everywhere; strings and numbers may differ where `loose` says so.
    fn same_types(a: &Value, b: &Value) -> bool {
        use Value::*;
        match (a, b) {
            (List(x), List(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_types(x, y))
            }
            (Map(x), Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && same_types(va, vb))
            }
            _ => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }

    #[test]
    fn beacon_matches_the_capture_byte_for_byte() {
        let Some(real) = capture("01-BEACON-router-A.bin") else {
            return;
        };
        assert_eq!(beacon(0, "w2x5z:0"), real);
        let Some(real) = capture("32-BEACON-router-B-long-msgid.bin") else {
            return;
        };
        assert_eq!(beacon(143, "IIKRr:0"), real);
    }

    #[test]
    fn heartbeat_matches_the_capture_byte_for_byte() {
        let Some(real) = capture("03-HEARTBEAT-router-A.bin") else {
            return;
        };
        assert_eq!(heartbeat(1, "w2x5z:0", 1796071395631521), real);
        let Some(real) = capture("29-HEARTBEAT-router-B-long-msgid.bin") else {
            return;
        };
        assert_eq!(heartbeat(129, "IIKRr:0", 1796071480406792), real);
        let ours = shape(&heartbeat(129, "IIKRr:0", 1796071480406792));
        let theirs = shape(&real);
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(o.0, t.0);
            assert!(same_types(&o.1, &t.1), "{:?} vs {:?}", o.1, t.1);
            assert_eq!(o.2, t.2);
        }
    }

    #[test]
    fn records_match_the_captures() {
        let Some(real) = capture("10-RECORD-LISTENER-flowCountL4-update.bin") else {
            return;
        };
        let ours = record(
            4,
            "mc/sfe.w2x5z:0",
            &[(
                4,
                vec![(1, Attr::Str("w2x5z:2".into())), (40, Attr::Num(1))],
            )],
        );
        assert_eq!(ours, real);
        let Some(real) = capture("28-RECORD-LINK-update-msgid-128-long.bin") else {
            return;
        };
        let ours = record(
            128,
            "mc/sfe.IIKRr:0",
            &[(
                2,
                vec![
                    (1, Attr::Str("IIKRr:1".into())),
                    (23, Attr::Num(34075)),
                    (58, Attr::Num(27366)),
                ],
            )],
        );
        assert_eq!(ours, real);
        // A SITE (type 0 as uint0) and a ROUTER, as in a flush answer.
        let Some(real) =
            capture("20-RECORD-SITE-ROUTER-ROUTER_ACCESS-LISTENER-second-flush-answer-A.bin")
        else {
            return;
        };
        let site = "29a23db9-dff4-4072-8a39-7815e3e666b3";
        let s = |v: &str| Attr::Str(v.to_string());
        let ours = record(
            29,
            "mc/sfe.w2x5z:0",
            &[
                (
                    0,
                    vec![
                        (1, s(site)),
                        (3, Attr::Num(1796071376371997)),
                        (11, s("podman")),
                        (12, s("west")),
                        (30, s("west")),
                        (32, s("2.1.1")),
                    ],
                ),
                (
                    1,
                    vec![
                        (1, s("w2x5z:0")),
                        (2, s(site)),
                        (3, Attr::Num(1796071376357056)),
                        (12, s("west")),
                        (13, s("interior")),
                        (20, s("skupper-router")),
                        (21, s("3.5.1")),
                        (22, s("skupper-router-7d4b9-w2x5z")),
                        (30, s("0/RA")),
                        (32, s("3.5.1")),
                    ],
                ),
            ],
        );
        let ours = shape(&ours);
        let theirs = shape(&real);
        assert_eq!(ours[0].0, theirs[0].0);
        assert_eq!(ours[0].1, theirs[0].1, "properties");
        let (Value::List(our_records), Value::List(their_records)) = (&ours[1].1, &theirs[1].1)
        else {
            panic!("record lists")
        };
        for (o, t) in our_records.iter().zip(their_records) {
            assert_eq!(o, t);
        }
        assert_eq!(&ours[1].2[..3], &theirs[1].2[..3], "list32 of map32");
    }

    #[test]
    fn placeholders_are_unwrapped_and_payloads_wrapped() {
        let raw = beacon(3, "abcde:0");
        // A transfer frame with list8 performative (handle 0, delivery-id 1, tag, format 0,
        // settled true) and a placeholder payload.
        let mut body = vec![
            0x00, 0x53, 0x14, 0xc0, 0x00, 0x05, 0x43, 0x52, 0x01, 0xa0, 0x01, 0x00, 0x43, 0x41,
        ];
        body[4] = (body.len() - 5) as u8;
        let mut payload = vec![0x00, 0x53, 0x77, 0xb0];
        let binary = placeholder(&raw);
        payload.extend_from_slice(&(binary.len() as u32).to_be_bytes());
        payload.extend_from_slice(&binary);
        let mut frame = vec![0, 0, 0, 0, 2, 0, 0, 0];
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&payload);
        let size = frame.len() as u32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        let mut input = b"AMQP\x00\x01\x00\x00".to_vec();
        input.extend_from_slice(&frame);
        let mut output = Vec::new();
        reframe(&mut input, &mut output, Rewrite::UnwrapPlaceholders);
        assert!(input.is_empty());
        assert_eq!(&output[..8], b"AMQP\x00\x01\x00\x00");
        let unwrapped = &output[8..];
        assert_eq!(&unwrapped[8 + body.len()..], &raw[..]);
        let mut again = unwrapped.to_vec();
        let mut wrapped = Vec::new();
        reframe(&mut again, &mut wrapped, Rewrite::WrapAsBinary);
        let p = &wrapped[8 + body.len()..];
        assert_eq!(&p[..4], &[0x00, 0x53, 0x77, 0xb0]);
        assert_eq!(&p[8..], &raw[..]);
        assert_eq!(
            header_of(&raw),
            Some((Some(3), Some("mc/sfe.all".into()), Some("BEACON".into())))
        );
    }
}
