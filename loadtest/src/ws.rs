//! A deliberately small WebSocket client (RFC 6455, client role, no extensions) on a tokio
//! `TcpStream`, written for the load generator rather than taken from tungstenite: the server
//! under test uses tungstenite, and sharing its frame code would hide the server's framing
//! bugs; and owning the buffers lets thousands of sockets share one read scratch buffer and
//! write many frames per syscall.
//!
//! A connection is driven by [`WsConn::pump`]: it writes whatever is queued, waits until the
//! socket is readable (or the deadline passes), reads everything available and hands each
//! complete text or binary message to a callback. Frames are queued with
//! [`WsConn::queue_text`] and never flushed one by one.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use base64::Engine as _;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Largest message accepted from a server; anything bigger is treated as a protocol error
/// so a runaway server cannot exhaust the client's memory.
const MAX_MESSAGE: usize = 16 << 20;
/// Bytes asked of the kernel per read; large enough that a busy socket drains in a few calls.
const READ_CHUNK: usize = 64 << 10;
/// Reads per readiness event before yielding to other sockets on the same thread.
const READS_PER_WAKE: usize = 8;

thread_local! {
    /// Shared read buffer: every socket on a worker thread reads into it and keeps only a
    /// partial trailing frame, so idle sockets cost no read buffer at all.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4 * READ_CHUNK));
}

/// Why a connection stopped working.
#[derive(Debug)]
pub enum WsError {
    /// Socket error (connect refused, reset, ...).
    Io(io::Error),
    /// The server closed the connection, with the close code when it sent one.
    Closed(Option<u16>),
    /// The server broke the WebSocket protocol.
    Protocol(&'static str),
    /// The opening handshake was refused or malformed.
    Handshake(String),
    /// A QUIC connection or stream failed.
    Quic(String),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Io(e) => write!(f, "io: {e}"),
            WsError::Closed(Some(c)) => write!(f, "closed by server (code {c})"),
            WsError::Closed(None) => write!(f, "closed by server"),
            WsError::Protocol(m) => write!(f, "protocol violation: {m}"),
            WsError::Handshake(m) => write!(f, "handshake: {m}"),
            WsError::Quic(m) => write!(f, "quic: {m}"),
        }
    }
}

impl std::error::Error for WsError {}

impl From<io::Error> for WsError {
    fn from(e: io::Error) -> Self {
        WsError::Io(e)
    }
}

/// Where to connect: socket address, `Host` header and request path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Resolved server address.
    pub addr: SocketAddr,
    /// Value of the `Host` header.
    pub host: String,
    /// Request target, e.g. `/ws`.
    pub path: String,
}

impl Endpoint {
    /// Parses `ws://host:port/path` (no TLS).
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        use std::net::ToSocketAddrs;
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow::anyhow!("only ws:// URLs are supported, got {url}"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/ws"),
        };
        let with_port = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow::anyhow!("cannot resolve {host}"))?;
        Ok(Endpoint {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// `http://host:port` for the REST API of the same server.
    pub fn http_base(&self) -> String {
        format!("http://{}", self.host)
    }
}

/// One client WebSocket connection.
pub struct WsConn {
    stream: TcpStream,
    /// Bytes of an incomplete frame carried over to the next read.
    partial: Vec<u8>,
    /// Payload of a fragmented message being reassembled.
    frag: Vec<u8>,
    frag_active: bool,
    out: Vec<u8>,
    out_pos: usize,
    rng: u64,
}

impl WsConn {
    /// Opens a TCP connection (bound to `src` when given, so many loopback source addresses
    /// multiply the available 4-tuples) and performs the opening handshake, offering
    /// `protocol` as `Sec-WebSocket-Protocol` when given (the server must accept it).
    pub async fn connect(
        ep: &Endpoint,
        src: Option<IpAddr>,
        seed: u64,
        protocol: Option<&str>,
    ) -> Result<WsConn, WsError> {
        let sock = if ep.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = src {
            set_bind_no_port(&sock)?;
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        let mut stream = sock.connect(ep.addr).await?;
        stream.set_nodelay(true)?;
        let mut rng = seed | 1;
        let key_bytes: [u8; 16] = {
            let a = xorshift(&mut rng).to_le_bytes();
            let b = xorshift(&mut rng).to_le_bytes();
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&a);
            k[8..].copy_from_slice(&b);
            k
        };
        let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
        let offer = protocol.map_or(String::new(), |p| {
            format!("Sec-WebSocket-Protocol: {p}\r\n")
        });
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
            ep.path, ep.host
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        let header_len = loop {
            stream.readable().await?;
            match stream.try_read_buf(&mut buf) {
                Ok(0) => return Err(WsError::Handshake("connection closed".into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    if resp.code != Some(101) {
                        let body = String::from_utf8_lossy(&buf[n..]).into_owned();
                        return Err(WsError::Handshake(format!(
                            "status {:?}: {}",
                            resp.code,
                            body.trim()
                        )));
                    }
                    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
                    let accept = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                        .map(|h| h.value);
                    if accept != Some(expected.as_bytes()) {
                        return Err(WsError::Handshake("bad Sec-WebSocket-Accept".into()));
                    }
                    if let Some(p) = protocol {
                        let chosen = resp
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
                            .map(|h| h.value);
                        if chosen != Some(p.as_bytes()) {
                            return Err(WsError::Handshake(format!(
                                "server did not accept subprotocol {p}"
                            )));
                        }
                    }
                    break n;
                }
                Ok(httparse::Status::Partial) if buf.len() < 16 << 10 => {}
                Ok(httparse::Status::Partial) => {
                    return Err(WsError::Handshake("response head too large".into()))
                }
                Err(e) => return Err(WsError::Handshake(format!("bad response: {e}"))),
            }
        };
        let partial = buf[header_len..].to_vec();
        Ok(WsConn {
            stream,
            partial,
            frag: Vec::new(),
            frag_active: false,
            out: Vec::new(),
            out_pos: 0,
            rng,
        })
    }

    /// Local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Bytes queued but not yet accepted by the kernel.
    pub fn pending_write(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Queues one masked text frame. Nothing is written until the next [`pump`](Self::pump)
    /// or [`flush`](Self::flush), so a burst of frames leaves in one syscall.
    pub fn queue_text(&mut self, payload: &[u8]) {
        self.queue_frame(0x1, payload);
    }

    /// Queues one masked binary frame, like [`queue_text`](Self::queue_text).
    pub fn queue_binary(&mut self, payload: &[u8]) {
        self.queue_frame(0x2, payload);
    }

    fn queue_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mask = (xorshift(&mut self.rng) as u32).to_le_bytes();
        let before = self.out.len();
        encode_frame(&mut self.out, opcode, payload, mask);
        crate::conn::count_wire(self.out.len() - before, 0);
    }

    /// Writes queued bytes until done or the kernel buffer is full.
    fn try_flush(&mut self) -> Result<(), WsError> {
        while self.out_pos < self.out.len() {
            match self.stream.try_write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(WsError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            // A burst grows the buffer to ~64 KiB; give it back so thousands of finished
            // sockets do not each keep one.
            if self.out.capacity() > 16 << 10 {
                self.out.shrink_to(4 << 10);
            }
        }
        Ok(())
    }

    /// Writes everything queued, waiting for the socket as needed.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        loop {
            self.try_flush()?;
            if self.pending_write() == 0 {
                return Ok(());
            }
            self.stream.writable().await?;
        }
    }

    /// Writes what it can, then waits until data arrives or `deadline` passes, and hands
    /// every complete message read to `on_message`. Returns `Ok(true)` when something was
    /// read, `Ok(false)` when the deadline passed first.
    pub async fn pump<F: FnMut(&[u8])>(
        &mut self,
        deadline: Option<Instant>,
        mut on_message: F,
    ) -> Result<bool, WsError> {
        loop {
            self.try_flush()?;
            let interest = if self.pending_write() > 0 {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let ready = match deadline {
                Some(d) => tokio::select! {
                    r = self.stream.ready(interest) => r?,
                    () = tokio::time::sleep_until(d) => return Ok(false),
                },
                None => self.stream.ready(interest).await?,
            };
            if ready.is_readable() || ready.is_read_closed() {
                if self.read_available(&mut on_message)? {
                    return Ok(true);
                }
            } else if ready.is_writable() {
                self.try_flush()?;
            }
        }
    }

    /// Reads whatever the kernel has and dispatches complete messages. Returns whether any
    /// byte was read.
    fn read_available<F: FnMut(&[u8])>(&mut self, on_message: &mut F) -> Result<bool, WsError> {
        SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            buf.clear();
            buf.extend_from_slice(&self.partial);
            self.partial.clear();
            let mut got = false;
            let mut eof = false;
            for _ in 0..READS_PER_WAKE {
                buf.reserve(READ_CHUNK);
                let room = buf.capacity() - buf.len();
                match self.stream.try_read_buf(&mut *buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        got = true;
                        if n < room {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            let used = self.dispatch(&buf, on_message)?;
            self.partial.extend_from_slice(&buf[used..]);
            if self.partial.len() > MAX_MESSAGE + 14 {
                return Err(WsError::Protocol("frame too large"));
            }
            if buf.capacity() > 16 * READ_CHUNK {
                buf.clear();
                buf.shrink_to(4 * READ_CHUNK);
            }
            if eof {
                return Err(WsError::Closed(None));
            }
            Ok(got)
        })
    }

    /// Parses complete frames from `buf`; returns how many bytes were consumed.
    fn dispatch<F: FnMut(&[u8])>(
        &mut self,
        buf: &[u8],
        on_message: &mut F,
    ) -> Result<usize, WsError> {
        let mut pos = 0;
        while let Some(h) = parse_header(&buf[pos..])? {
            let start = pos + h.header_len;
            let end = start + h.payload_len;
            let payload = &buf[start..end];
            crate::conn::count_wire(0, end - pos);
            match h.opcode {
                0x1 | 0x2 => {
                    if self.frag_active {
                        return Err(WsError::Protocol("new message inside fragmented one"));
                    }
                    if h.fin {
                        if h.opcode == 0x1 && std::str::from_utf8(payload).is_err() {
                            return Err(WsError::Protocol("text frame is not UTF-8"));
                        }
                        on_message(payload);
                    } else {
                        self.frag_active = true;
                        self.frag.clear();
                        self.frag.extend_from_slice(payload);
                    }
                }
                0x0 => {
                    if !self.frag_active {
                        return Err(WsError::Protocol("continuation without a message"));
                    }
                    self.frag.extend_from_slice(payload);
                    if self.frag.len() > MAX_MESSAGE {
                        return Err(WsError::Protocol("message too large"));
                    }
                    if h.fin {
                        self.frag_active = false;
                        on_message(&self.frag);
                        self.frag = Vec::new();
                    }
                }
                0x8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Err(WsError::Closed(code));
                }
                0x9 => {
                    let p = payload.to_vec();
                    self.queue_frame(0xA, &p);
                }
                0xA => {}
                _ => return Err(WsError::Protocol("unknown opcode")),
            }
            pos = end;
        }
        Ok(pos)
    }

    /// Sends a normal-closure frame and shuts the socket down, best effort.
    pub async fn close(mut self) {
        self.queue_frame(0x8, &1000u16.to_be_bytes());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.flush()).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Decoded fixed part of a server frame.
#[derive(Debug, PartialEq, Eq)]
struct FrameHeader {
    fin: bool,
    opcode: u8,
    header_len: usize,
    payload_len: usize,
}

/// Parses one frame header if the whole frame is in `buf`. An incomplete frame is `None`,
/// not an error.
fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set without an extension"));
    }
    if b1 & 0x80 != 0 {
        return Err(WsError::Protocol("server frame is masked"));
    }
    let opcode = b0 & 0x0f;
    let fin = b0 & 0x80 != 0;
    let (header_len, payload_len) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            if n > MAX_MESSAGE as u64 {
                return Err(WsError::Protocol("frame too large"));
            }
            (10, n as usize)
        }
        n => (2, n as usize),
    };
    if opcode >= 0x8 && (!fin || payload_len > 125) {
        return Err(WsError::Protocol("bad control frame"));
    }
    if payload_len > MAX_MESSAGE {
        return Err(WsError::Protocol("frame too large"));
    }
    if buf.len() < header_len + payload_len {
        return Ok(None);
    }
    Ok(Some(FrameHeader {
        fin,
        opcode,
        header_len,
        payload_len,
    }))
}

/// Appends one masked, final frame to `out`.
fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Sets IP_BIND_ADDRESS_NO_PORT so binding a source address does not reserve a port until
/// `connect`, letting the kernel reuse ports across destinations.
fn set_bind_no_port(sock: &TcpSocket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd owned by `sock`; option value is a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Cheap PRNG for masking keys; the masks only need to vary, not be secret.
pub fn xorshift(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let len7 = (frame[1] & 0x7f) as usize;
        let (len, off) = match len7 {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n, 2),
        };
        let mask = &frame[off..off + 4];
        let data = frame[off + 4..off + 4 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        (frame[0], data)
    }

    #[test]
    fn encodes_masked_frames_of_every_length_class() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, 1, &payload, [1, 2, 3, 4]);
            assert_eq!(out[1] & 0x80, 0x80, "client frames are masked");
            let (b0, data) = unmask(&out);
            assert_eq!(b0, 0x81);
            assert_eq!(data, payload);
        }
    }

    #[test]
    fn parses_server_frames_and_waits_for_partial_ones() {
        let frame = [0x81, 3, b'a', b'b', b'c'];
        let h = parse_header(&frame).unwrap().unwrap();
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                opcode: 1,
                header_len: 2,
                payload_len: 3
            }
        );
        assert!(parse_header(&frame[..4]).unwrap().is_none());
        let mut long = vec![0x82, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(parse_header(&long).unwrap().unwrap().payload_len, 256);
        assert!(parse_header(&long[..100]).unwrap().is_none());
    }

    #[test]
    fn rejects_masked_and_oversized_server_frames() {
        assert!(matches!(
            parse_header(&[0x81, 0x83, 0, 0, 0, 0, 1, 2, 3]),
            Err(WsError::Protocol(_))
        ));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(u64::MAX).to_be_bytes());
        assert!(matches!(parse_header(&huge), Err(WsError::Protocol(_))));
        assert!(matches!(
            parse_header(&[0x09, 0]),
            Err(WsError::Protocol(_))
        ));
    }

    #[test]
    fn parses_ws_urls() {
        let ep = Endpoint::parse("ws://127.0.0.1:9001/ws").unwrap();
        assert_eq!(ep.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(ep.path, "/ws");
        assert_eq!(ep.http_base(), "http://127.0.0.1:9001");
        assert_eq!(Endpoint::parse("ws://127.0.0.1:9001").unwrap().path, "/ws");
        assert!(Endpoint::parse("wss://x:1/ws").is_err());
    }
}
