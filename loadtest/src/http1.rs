//! A minimal HTTP/1.1 keep-alive client for the load's hot path: one request at a time
//! on one connection (plain TCP or TLS, [`crate::transport::Stream`]), the request
//! written with one `write`, the answer parsed in place (status line, `Content-Length`,
//! chunked or until-close bodies, `Connection: close`).
//!
//! It exists because a general client (hyper) costs several times wrk's CPU per
//! request, and on a small machine the generator's CPU is taken from the server under
//! test. It must never pipeline or retry: a failed exchange drops the connection.

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::Stream;

/// Largest response head read.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Read buffer growth step.
const READ_BYTES: usize = 16 * 1024;

/// One keep-alive connection.
#[derive(Debug)]
pub struct Http1 {
    stream: Stream,
    buffer: BytesMut,
    /// The server closed (or will close) the connection: it must not be reused.
    pub closed: bool,
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// No body (1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Known(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Body delimitation.
    pub length: Length,
    /// The connection closes after this response.
    pub close: bool,
    /// Bytes of the head, including the blank line.
    pub size: usize,
}

impl Http1 {
    /// A client on a connected stream ([`crate::transport::connect`]).
    pub fn new(stream: Stream) -> Http1 {
        Http1 { stream, buffer: BytesMut::with_capacity(READ_BYTES), closed: false }
    }

    /// Writes `request` (a whole encoded request) and reads the answer: status and body.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        body_bytes_max: usize,
    ) -> Result<(u16, Bytes), String> {
        if !self.buffer.is_empty() {
            return Err("unexpected bytes before the request".to_owned());
        }
        self.stream.write_all(request).await.map_err(|e| e.to_string())?;
        self.stream.flush().await.map_err(|e| e.to_string())?;
        let head = self.head().await?;
        self.closed |= head.close;
        let body = match head.length {
            Length::Empty => Bytes::new(),
            Length::Known(length) if length > body_bytes_max => return Err(too_large()),
            Length::Known(length) => self.known(length).await?,
            Length::Chunked => self.chunked(body_bytes_max).await?,
            Length::UntilClose => self.until_close(body_bytes_max).await?,
        };
        Ok((head.status, body))
    }

    /// Reads heads until a final (non-1xx) one.
    async fn head(&mut self) -> Result<Head, String> {
        loop {
            match parse_head(&self.buffer)? {
                Some(head) if (100..200).contains(&head.status) => self.buffer.advance(head.size),
                Some(head) => {
                    self.buffer.advance(head.size);
                    return Ok(head);
                }
                None if self.buffer.len() > HEAD_BYTES_MAX => {
                    return Err("response head too large".to_owned());
                }
                None => self.fill().await?,
            }
        }
    }

    async fn known(&mut self, length: usize) -> Result<Bytes, String> {
        while self.buffer.len() < length {
            self.fill().await?;
        }
        Ok(self.buffer.split_to(length).freeze())
    }

    async fn chunked(&mut self, body_bytes_max: usize) -> Result<Bytes, String> {
        loop {
            if let Some((body, size)) = decode_chunked(&self.buffer, body_bytes_max)? {
                self.buffer.advance(size);
                return Ok(body);
            }
            self.fill().await?;
        }
    }

    async fn until_close(&mut self, body_bytes_max: usize) -> Result<Bytes, String> {
        self.closed = true;
        while self.read().await? > 0 {
            if self.buffer.len() > body_bytes_max {
                return Err(too_large());
            }
        }
        Ok(self.buffer.split().freeze())
    }

    /// Reads more; the connection ending here is an error.
    async fn fill(&mut self) -> Result<(), String> {
        match self.read().await? {
            0 => {
                self.closed = true;
                Err("connection closed before the whole answer".to_owned())
            }
            _ => Ok(()),
        }
    }

    async fn read(&mut self) -> Result<usize, String> {
        self.buffer.reserve(READ_BYTES);
        self.stream.read_buf(&mut self.buffer).await.map_err(|e| e.to_string())
    }
}

fn too_large() -> String {
    "response body too large".to_owned()
}

/// Appends the encoded request to `out`.
pub fn encode(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: &[u8],
    authorization: Option<&[u8]>,
    body: Option<&[u8]>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    if let Some(authorization) = authorization {
        out.extend_from_slice(b"\r\nauthorization: ");
        out.extend_from_slice(authorization);
    }
    if let Some(body) = body {
        out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response head at the start of `buffer`; `None` until it is complete.
pub fn parse_head(buffer: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buffer, b"\r\n\r\n") else { return Ok(None) };
    let text = std::str::from_utf8(&buffer[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (status, http10) = status_of(status_line)?;
    let (mut length, mut chunked, mut close, mut keep_alive) = (None, false, http10, false);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("malformed response header")?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad content-length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().trim_end().ends_with("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            close |= value.contains("close");
            keep_alive |= value.contains("keep-alive");
        }
    }
    let length = match (status, chunked, length) {
        (100..=199 | 204 | 304, _, _) => Length::Empty,
        (_, true, _) => Length::Chunked,
        (_, false, Some(length)) => Length::Known(length),
        (_, false, None) => Length::UntilClose,
    };
    let close = (close && !(http10 && keep_alive)) || length == Length::UntilClose;
    Ok(Some(Head { status, length, close, size: end + 4 }))
}

/// The status and whether the server speaks HTTP/1.0.
fn status_of(line: &str) -> Result<(u16, bool), String> {
    let malformed = || format!("malformed status line {line:?}");
    let (version, rest) = line.split_once(' ').ok_or_else(malformed)?;
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(malformed()),
    };
    let code = rest.get(..3).ok_or_else(malformed)?;
    let status = code.parse::<u16>().map_err(|_| malformed())?;
    if !(100..=999).contains(&status) {
        return Err(malformed());
    }
    Ok((status, http10))
}

/// Decodes a whole chunked body at the start of `buffer`: the body and the bytes it
/// took, `None` until it is complete.
pub fn decode_chunked(
    buffer: &[u8],
    body_bytes_max: usize,
) -> Result<Option<(Bytes, usize)>, String> {
    let mut body = BytesMut::new();
    let mut at = 0;
    loop {
        let Some(end) = find(&buffer[at..], b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&buffer[at..at + end]).map_err(|_| "bad chunk size")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {hex:?}"))?;
        at += end + 2;
        if size == 0 {
            return Ok(trailers_end(buffer, at).map(|at| (body.freeze(), at)));
        }
        if size > body_bytes_max || body.len() + size > body_bytes_max {
            return Err(too_large());
        }
        if buffer.len() < at + size + 2 {
            return Ok(None);
        }
        if &buffer[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".to_owned());
        }
        body.extend_from_slice(&buffer[at..at + size]);
        at += size + 2;
    }
}

/// The end of the trailers (the blank line) from `at`, if complete.
fn trailers_end(buffer: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let end = find(&buffer[at..], b"\r\n")?;
        at += end + 2;
        if end == 0 {
            return Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        type Expected = Option<(u16, Length, bool)>;
        let cases: [(&str, Expected); 9] = [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                Some((200, Length::Known(5), false)),
            ),
            (
                "HTTP/1.1 201 Created\r\nContent-Length:  12 \r\n\r\n",
                Some((201, Length::Known(12), false)),
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                Some((200, Length::Chunked, false)),
            ),
            (
                "HTTP/1.1 503 x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                Some((503, Length::Known(0), true)),
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", Some((204, Length::Empty, false))),
            ("HTTP/1.1 200 OK\r\n\r\n", Some((200, Length::UntilClose, true))),
            ("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", Some((200, Length::Known(1), true))),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\nConnection: keep-alive\r\n\r\n",
                Some((200, Length::Known(1), false)),
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n", None),
        ];
        for (text, expected) in cases {
            let head = parse_head(text.as_bytes()).expect("parses");
            assert_eq!(head.map(|h| (h.status, h.length, h.close)), expected, "{text:?}");
        }
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap().size, 19);
        assert!(parse_head(b"SPDY 200\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies() {
        let whole = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT";
        let (body, size) = decode_chunked(whole, 100).unwrap().unwrap();
        assert_eq!((&body[..], size), (&b"hello world"[..], whole.len() - 4));
        let trailers = b"1\r\na\r\n0\r\nx-t: 1\r\n\r\n";
        assert_eq!(decode_chunked(trailers, 100).unwrap().unwrap().1, trailers.len());
        for cut in 0..whole.len() - 4 {
            assert_eq!(decode_chunked(&whole[..cut], 100).unwrap(), None, "cut at {cut}");
        }
        assert!(decode_chunked(b"zz\r\n", 100).is_err());
        assert!(decode_chunked(b"5\r\nhelloXX", 100).is_err());
        assert!(decode_chunked(b"ff\r\n", 10).is_err());
    }

    #[test]
    fn requests_are_encoded() {
        let mut out = Vec::new();
        encode(&mut out, &Method::POST, "/v1/transfers", b"h:1", Some(b"Bearer k"), Some(b"{}"));
        let expected = "POST /v1/transfers HTTP/1.1\r\nhost: h:1\r\nauthorization: Bearer k\r\n\
                        content-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
