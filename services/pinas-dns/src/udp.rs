//! The UDP front end: one receive loop per core on `SO_REUSEPORT` sockets, feeding
//! hickory's [`Request`] to the same [`RequestHandler`] that serves TCP.
//!
//! hickory-server's own UDP path spawns a task and passes every packet through channels.
//! Here each socket has its own thread with a single-threaded runtime, like dnsmasq's
//! event loop (no wake-ups across threads), and polls the handler once in place: answers that need no I/O (local
//! records, the switch, blocked names, cache hits) are sent before the next packet is
//! read, so a flood cannot pile up tasks and memory; only queries that wait on an upstream
//! become tasks, at most [`MAX_PENDING`] at a time (beyond that, queries are dropped and
//! clients retry, as with any overloaded resolver).
//!
//! Packets shorter than a header, and responses (QR set), are dropped; a readable header
//! with an unreadable body gets FORMERR (RFC 1035 section 4.1.1), as hickory answers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use hickory_proto::op::MessageType;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;

use crate::handler::Handler;
use crate::rrl::Verdict;

/// Most queries waiting on an upstream at once, per process.
pub const MAX_PENDING: usize = 4096;

/// Binds `n` UDP sockets on `addr` with `SO_REUSEPORT`, so the kernel spreads clients
/// over them. With port 0 the first socket picks the port and the others share it.
///
/// # Errors
/// I/O errors from socket creation or bind.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::UdpSocket>> {
    use socket2::{Domain, Protocol as P, Socket, Type};
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(P::UDP))?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(false).ok();
        }
        // Room for bursts while a loop is busy; the kernel caps it at net.core.rmem_max.
        s.set_recv_buffer_size(1 << 20).ok();
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        addr = std.local_addr()?;
        out.push(std);
    }
    Ok(out)
}

/// Where a response goes: into the receive loop's outgoing batch while the request is
/// handled in place, or straight to the socket once it became a task.
enum Slot {
    Inline(Option<Vec<u8>>),
    Direct,
}

/// Sends a response to the client's address on the receiving socket.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    slot: Arc<std::sync::Mutex<Slot>>,
}

/// Encodes `response` for UDP: 512 bytes without EDNS, the advertised size with it
/// (RFC 1035 section 4.2.1, RFC 6891 section 6.2.5). Records that do not fit are left out
/// and TC is set, so the client retries over TCP. On an encoding error the bytes are a
/// SERVFAIL header.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> (Vec<u8>, Result<ResponseInfo, NetError>) {
    let max = response.edns().map_or(512, |e| e.max_payload().max(512));
    let id = response.metadata().id;
    let mut buf = Vec::with_capacity(512);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(max);
    match response.destructive_emit(&mut enc) {
        Ok(info) => (buf, Ok(info)),
        Err(e) => {
            tracing::debug!(error = %e, "cannot encode a response; sending SERVFAIL");
            (error_header(id, 0x8000, 2).to_vec(), Err(NetError::from(e)))
        }
    }
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (buf, info) = encode(response);
        {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Slot::Inline(out) = &mut *slot {
                *out = Some(buf);
                return info;
            }
        }
        match self.socket.try_send_to(&buf, self.dst) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.socket.send_to(&buf, self.dst).await?;
            }
            Err(e) => return Err(e.into()),
        }
        info
    }
}

/// Keeps the encoded response instead of sending it (tests and fuzzing).
#[derive(Clone, Default)]
struct Collector(Arc<std::sync::Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Collector {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (buf, info) = encode(response);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(buf);
        info
    }
}

/// Answers one raw UDP datagram from `src` exactly as [`serve`] does, returning the bytes
/// that would be sent (`None`: dropped).
pub async fn answer_raw(handler: &Handler, raw: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let request = match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
        Ok(r) => r,
        Err(_) => return formerr_for(raw).map(|h| h.to_vec()),
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let c = Collector::default();
    handler
        .handle_request::<_, TokioTime>(&request, c.clone())
        .await;
    let out = c.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    out
}

/// A bare response header: `id`, `flags` (QR and whatever the caller copies), `rcode`.
fn error_header(id: u16, flags: u16, rcode: u16) -> [u8; 12] {
    let f = flags | 0x8000 | (rcode & 0xf);
    let mut h = [0u8; 12];
    h[..2].copy_from_slice(&id.to_be_bytes());
    h[2..4].copy_from_slice(&f.to_be_bytes());
    h
}

/// FORMERR for a packet whose header reads but whose body does not; `None` to drop it.
pub fn formerr_for(raw: &[u8]) -> Option<[u8; 12]> {
    if raw.len() < 12 || raw[2] & 0x80 != 0 {
        return None; // no header, or a response: never answer those
    }
    let id = u16::from_be_bytes([raw[0], raw[1]]);
    // Keep the opcode and RD bits of the query.
    let flags = u16::from_be_bytes([raw[2] & 0x79, 0]);
    Some(error_header(id, flags, 1))
}

/// A response made from the query's own bytes: its header (id, opcode, RD) and its
/// question, with QR set, `tc` as given, `rcode`, and no records, so it is never larger
/// than the query. `None` for packets that are not a query with one readable question
/// (they get nothing: a client that is refused or limited earns no FORMERR either).
pub fn bare_response(raw: &[u8], tc: bool, rcode: u16) -> Option<Vec<u8>> {
    if raw.len() < 12 || raw[2] & 0x80 != 0 || raw[4..6] != [0, 1] {
        return None;
    }
    let mut i = 12;
    loop {
        let len = *raw.get(i)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a compression pointer has no place in a query's question
        }
        i += 1 + len;
    }
    let end = i + 1 + 4; // root label, type, class
    if raw.len() < end {
        return None;
    }
    let mut out = raw[..end].to_vec();
    // QR, the query's opcode and RD, TC as asked; RA; the rcode.
    out[2] = 0x80 | (raw[2] & 0x79) | if tc { 0x02 } else { 0 };
    out[3] = 0x80 | (rcode & 0x0f) as u8;
    out[6..12].fill(0);
    Some(out)
}

/// Most datagrams read (and answers sent) per system call.
const BATCH: usize = 32;

/// Serves `socket` on a thread of its own until `stop` turns true.
///
/// # Errors
/// I/O errors creating the thread.
pub fn spawn_thread(
    socket: std::net::UdpSocket,
    handler: Handler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pinas-dns-udp".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a DNS UDP thread");
                    return;
                }
            };
            rt.block_on(async move {
                let socket = match UdpSocket::from_std(socket) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot register a DNS UDP socket");
                        return;
                    }
                };
                tokio::select! {
                    _ = serve(socket, handler) => {}
                    _ = stop.wait_for(|v| *v) => {}
                }
            });
        })
}

/// Receives on `socket` and answers forever. Datagrams are read and answered in batches
/// (`recvmmsg`/`sendmmsg`), halving the system calls under load. Queries that wait on an
/// upstream become tasks on the current runtime.
pub async fn serve(socket: UdpSocket, handler: Handler) {
    let socket = Arc::new(socket);
    let pending = Arc::new(AtomicUsize::new(0));
    let mut bufs = vec![[0u8; 4096]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut srcs = [None::<SocketAddr>; BATCH];
    let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    loop {
        let n = match socket
            .async_io(tokio::io::Interest::READABLE, || {
                sys::recv_batch(&socket, &mut bufs, &mut lens, &mut srcs)
            })
            .await
        {
            Ok(n) => n,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep serving.
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        for i in 0..n {
            let Some(src) = srcs[i].filter(|s| s.port() != 0) else {
                continue;
            };
            handle_one(
                &socket,
                &handler,
                &pending,
                &bufs[i][..lens[i]],
                src,
                &mut out,
            );
        }
        sys::send_batch(&socket, &mut out).await;
    }
}

/// Handles one datagram: the answer goes to `out` when it is ready at once, else the
/// query becomes a task that sends its own answer.
fn handle_one(
    socket: &Arc<UdpSocket>,
    handler: &Handler,
    pending: &Arc<AtomicUsize>,
    raw: &[u8],
    src: SocketAddr,
    out: &mut Vec<(Vec<u8>, SocketAddr)>,
) {
    // Before any parsing: clients elsewhere are refused, floods are cut.
    let st = &handler.state;
    if !st.allows(src.ip()) {
        st.metrics.refused();
        if let Some(r) = bare_response(raw, false, 5) {
            out.push((r, src));
        }
        return;
    }
    match st.rrl.check(src.ip(), std::time::Instant::now()) {
        Verdict::Answer => {}
        Verdict::Drop => {
            st.metrics.rate_limited(false);
            return;
        }
        Verdict::Slip => {
            st.metrics.rate_limited(true);
            if let Some(r) = bare_response(raw, true, 0) {
                out.push((r, src));
            }
            return;
        }
    }
    let request = match Request::from_bytes(raw.to_vec(), src, Protocol::Udp) {
        Ok(r) => r,
        Err(_) => {
            if let Some(h) = formerr_for(raw) {
                out.push((h.to_vec(), src));
            }
            return;
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return;
    }
    let slot = Arc::new(std::sync::Mutex::new(Slot::Inline(None)));
    let h = handler.clone();
    let rh = UdpResponder {
        socket: socket.clone(),
        dst: src,
        slot: slot.clone(),
    };
    let mut fut = Box::pin(async move {
        h.handle_request::<_, TokioTime>(&request, rh).await;
    });
    let mut cx = Context::from_waker(Waker::noop());
    let ready = fut.as_mut().poll(&mut cx).is_ready();
    let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Slot::Inline(Some(buf)) = std::mem::replace(&mut *s, Slot::Direct) {
        out.push((buf, src));
    }
    drop(s);
    if !ready {
        // Waiting on an upstream: let it finish as a task. The task polls again at once,
        // registering a real waker.
        if pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            pending.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let p = pending.clone();
        tokio::spawn(async move {
            fut.await;
            p.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Batched datagram I/O with `recvmmsg(2)` and `sendmmsg(2)`.
mod sys {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use tokio::net::UdpSocket;

    use super::BATCH;

    fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET, and
                // sockaddr_storage is large and aligned enough for it.
                let sin =
                    unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let sin6 =
                    unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(
                    SocketAddrV6::new(
                        ip,
                        u16::from_be(sin6.sin6_port),
                        sin6.sin6_flowinfo,
                        sin6.sin6_scope_id,
                    )
                    .into(),
                )
            }
            _ => None,
        }
    }

    /// Reads up to [`BATCH`] datagrams without blocking; returns how many.
    pub fn recv_batch(
        socket: &UdpSocket,
        bufs: &mut [[u8; 4096]],
        lens: &mut [usize; BATCH],
        srcs: &mut [Option<SocketAddr>; BATCH],
    ) -> io::Result<usize> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = bufs[i].len();
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of the stated sizes for the
        // duration of the call.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = r as usize;
        for i in 0..n {
            lens[i] = hdrs[i].msg_len as usize;
            srcs[i] = to_socket_addr(&names[i]);
        }
        Ok(n)
    }

    fn send_some(socket: &UdpSocket, msgs: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
        let n = msgs.len().min(BATCH);
        let addrs: Vec<socket2::SockAddr> = msgs[..n]
            .iter()
            .map(|(_, a)| socket2::SockAddr::from(*a))
            .collect();
        // SAFETY: all-zero is a valid value for these plain C structs.
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..n {
            iovs[i].iov_base = msgs[i].0.as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = msgs[i].0.len();
            hdrs[i].msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            hdrs[i].msg_hdr.msg_namelen = addrs[i].len();
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `msgs` and `addrs`, alive for the call; the
        // kernel only reads them.
        let r = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }

    /// Sends every answer in `out` (waiting for buffer space if needed) and empties it.
    /// An answer the kernel refuses (e.g. an unreachable address) is dropped.
    pub async fn send_batch(socket: &UdpSocket, out: &mut Vec<(Vec<u8>, SocketAddr)>) {
        let mut start = 0;
        while start < out.len() {
            let r = socket
                .async_io(tokio::io::Interest::WRITABLE, || {
                    send_some(socket, &out[start..])
                })
                .await;
            match r {
                Ok(sent) => start += sent.max(1),
                Err(e) => {
                    tracing::debug!(error = %e, to = %out[start].1, "cannot send a UDP answer");
                    start += 1;
                }
            }
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_response_echoes_the_question_only() {
        let mut m = hickory_proto::op::Message::query();
        m.metadata.id = 0x4242;
        m.metadata.recursion_desired = true;
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("a.example.").unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
        let raw = m.to_vec().unwrap();
        let r = bare_response(&raw, true, 0).unwrap();
        let back = hickory_proto::op::Message::from_vec(&r).unwrap();
        assert_eq!(back.metadata.id, 0x4242);
        assert!(back.metadata.truncation && back.metadata.recursion_desired);
        assert_eq!(back.queries.len(), 1);
        assert!(back.answers.is_empty() && back.edns.is_none());
        assert!(r.len() < raw.len());
        let r = bare_response(&raw, false, 5).unwrap();
        let back = hickory_proto::op::Message::from_vec(&r).unwrap();
        assert_eq!(
            back.metadata.response_code,
            hickory_proto::op::ResponseCode::Refused
        );
        assert!(bare_response(&raw[..15], false, 5).is_none());
    }

    #[test]
    fn formerr_keeps_id_and_never_answers_responses() {
        let q = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let h = formerr_for(&q).unwrap();
        assert_eq!(&h[..2], &[0x12, 0x34]);
        assert_eq!(h[2] & 0x80, 0x80, "QR set");
        assert_eq!(h[2] & 0x01, 0x01, "RD copied");
        assert_eq!(h[3] & 0x0f, 1, "FORMERR");
        let mut r = q;
        r[2] |= 0x80;
        assert!(formerr_for(&r).is_none());
        assert!(formerr_for(&q[..11]).is_none());
    }
}
