//! The query path: hickory-server's [`RequestHandler`] for PiNAS.
//!
//! Order of decisions for a query (one question, class IN):
//! 1. the switch record name → its current addresses, TTL `switch.ttl_secs`;
//! 2. local records (A, AAAA, CNAME chains, PTR, wildcards) → authoritative answer;
//! 3. while the blocking switch is on: allowlist → skip the rest of 3; denylist, then
//!    blocklists → `0.0.0.0`/`::` or NXDOMAIN;
//! 4. conditional forwarding rule → that server;
//! 5. cache → cached answer with aged TTLs;
//! 6. upstreams → forwarded answer, cached; SERVFAIL when none answers.
//!
//! Malformed messages never reach this code: hickory answers FORMERR for those whose
//! header parses and drops the rest.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::config::BlockingMode;
use crate::querylog::{Entry, ReplyKind, Status};
use crate::state::DnsState;
use crate::upstream::{build_query, exchange};
use crate::zone::{LocalData, Lookup};

/// The request handler registered with hickory's server.
#[derive(Clone)]
pub struct Handler {
    pub state: Arc<DnsState>,
}

/// The question name of a raw query in the form the role compares (lower case, no final
/// dot), read straight from the packet to avoid formatting a `Name`. `None` when the name
/// holds bytes a host name cannot have; the caller then falls back to `Name`'s text.
pub fn qname_from_wire(raw: &[u8]) -> Option<String> {
    let mut i = 12;
    let mut out = String::with_capacity(32);
    loop {
        let len = *raw.get(i)? as usize;
        if len == 0 {
            return Some(out);
        }
        if len > 63 {
            return None;
        }
        let label = raw.get(i + 1..i + 1 + len)?;
        if !out.is_empty() {
            out.push('.');
        }
        for &b in label {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return None;
            }
            out.push(b.to_ascii_lowercase() as char);
        }
        i += 1 + len;
        if out.len() > 253 {
            return None;
        }
    }
}

fn name_of(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

fn rdata(d: &LocalData) -> RData {
    match d {
        LocalData::A(ip) => RData::A(A(*ip)),
        LocalData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        LocalData::Cname(t) => RData::CNAME(CNAME(name_of(t))),
        LocalData::Ptr(t) => RData::PTR(PTR(name_of(t))),
    }
}

/// An SOA for negative answers the role makes itself, so clients cache them for `ttl`
/// seconds (RFC 2308 section 3).
fn synthetic_soa(owner: &Name, ttl: u32) -> Record {
    let soa = SOA::new(
        name_of("pinas"),
        name_of("hostmaster.pinas"),
        1,
        3600,
        600,
        86400,
        ttl,
    );
    Record::from_rdata(owner.clone(), ttl, RData::SOA(soa))
}

struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    /// A ready-made local answer, sent instead of `answers` when set.
    shared: Option<Arc<[Record]>>,
    authorities: Vec<Record>,
    status: Status,
    upstream: Option<String>,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Self {
        Reply {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            status: Status::Error,
            shared: None,
            upstream: None,
        }
    }
}

impl Handler {
    async fn answer(
        &self,
        qname_text: &str,
        qname: &Name,
        qtype: RecordType,
        dnssec_ok: bool,
    ) -> Reply {
        let st = &self.state;

        // 1. The switch record.
        if qname_text == st.switch_name {
            let sw = st.switch.load();
            let answers = sw
                .addresses
                .iter()
                .filter_map(|ip| match (ip, qtype) {
                    (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                        Some(RData::AAAA(AAAA(*v6)))
                    }
                    _ => None,
                })
                .map(|d| Record::from_rdata(qname.clone(), sw.ttl_secs, d))
                .collect::<Vec<_>>();
            let authorities = if answers.is_empty() {
                vec![synthetic_soa(qname, sw.ttl_secs)]
            } else {
                Vec::new()
            };
            return Reply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers,
                authorities,
                status: Status::Local,
                shared: None,
                upstream: None,
            };
        }

        // 2. Local records.
        let zone = st.zone.load();
        if let Some(ready) = zone.ready(qname_text, qtype) {
            return Reply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: Vec::new(),
                shared: Some(ready.clone()),
                authorities: Vec::new(),
                status: Status::Local,
                upstream: None,
            };
        }
        if let Lookup::Answer {
            records,
            continue_with,
        } = zone.lookup(qname_text, qtype)
        {
            let ttl = st.cfg.local_ttl_secs;
            let mut answers: Vec<Record> = records
                .iter()
                .enumerate()
                .map(|(i, (owner, d, rttl))| {
                    let owner = if i == 0 {
                        qname.clone()
                    } else {
                        name_of(owner)
                    };
                    Record::from_rdata(owner, if *rttl == 0 { ttl } else { *rttl }, rdata(d))
                })
                .collect();
            if let Some(target) = continue_with {
                // A local CNAME to an outside name: resolve the target as usual.
                let tname = name_of(&target);
                let rest = Box::pin(self.answer(&target, &tname, qtype, dnssec_ok)).await;
                answers.extend(rest.answers);
                return Reply {
                    rcode: rest.rcode,
                    authoritative: false,
                    answers,
                    authorities: rest.authorities,
                    status: Status::Local,
                    shared: None,
                    upstream: rest.upstream,
                };
            }
            let authorities = if answers.is_empty() {
                vec![synthetic_soa(qname, ttl)]
            } else {
                Vec::new()
            };
            return Reply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers,
                authorities,
                status: Status::Local,
                shared: None,
                upstream: None,
            };
        }

        // 3. Allowlist, denylist, blocklists (while the blocking switch is on).
        if st.blocking_on()
            && st.allow.load().matches(qname_text).is_none()
            && (st.deny.load().matches(qname_text).is_some()
                || st.blocked.load().matches(qname_text).is_some())
        {
            let ttl = st.cfg.blocked_ttl_secs;
            let mut r = Reply {
                rcode: ResponseCode::NoError,
                authoritative: true,
                answers: Vec::new(),
                authorities: Vec::new(),
                status: Status::Blocked,
                shared: None,
                upstream: None,
            };
            match (st.settings.load().settings.blocking_mode, qtype) {
                (BlockingMode::Nxdomain, _) => r.rcode = ResponseCode::NXDomain,
                (BlockingMode::Null, RecordType::A) => r.answers.push(Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::A(A::new(0, 0, 0, 0)),
                )),
                (BlockingMode::Null, RecordType::AAAA) => r.answers.push(Record::from_rdata(
                    qname.clone(),
                    ttl,
                    RData::AAAA(AAAA::new(0, 0, 0, 0, 0, 0, 0, 0)),
                )),
                _ => {}
            }
            if r.answers.is_empty() {
                r.authorities.push(synthetic_soa(qname, ttl));
            }
            return r;
        }

        // 4.-6. Conditional forwarding, cache, upstreams.
        let now = Instant::now();
        if let Some(e) = st.cache.get(qname_text, qtype, now) {
            if let Some((answers, authorities)) = e.aged(now) {
                return Reply {
                    rcode: e.rcode,
                    authoritative: false,
                    answers,
                    authorities,
                    status: Status::Cached,
                    shared: None,
                    upstream: None,
                };
            }
        }
        let key = crate::inflight::Key {
            name: qname_text.to_string(),
            qtype,
            dnssec_ok,
        };
        let rule = zone.forward_for(qname_text).map(|r| r.server.clone());
        let (st2, qname2, text) = (self.state.clone(), qname.clone(), key.name.clone());
        let upstream = move || async move {
            let query = build_query(&qname2, qtype);
            let result = match rule {
                Some(server) => exchange(&server, &query, st2.forwarder.timeout())
                    .await
                    .map(|m| (m, server)),
                None => st2.forwarder.forward(&query).await,
            };
            match result {
                Ok((m, up)) => {
                    st2.cache.insert(&text, qtype, &m, now);
                    Ok(Arc::new((m, up.to_string())))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        match st.inflight.run(key, upstream).await {
            Ok(got) => {
                let (m, up) = &*got;
                Reply {
                    rcode: m.metadata.response_code,
                    authoritative: false,
                    answers: m.answers.clone(),
                    authorities: m.authorities.clone(),
                    status: Status::Forwarded,
                    shared: None,
                    upstream: Some(up.clone()),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, name = qname_text, "no upstream answered");
                Reply::error(ResponseCode::ServFail)
            }
        }
    }

    fn log(&self, request: &Request, name: String, qtype: RecordType, reply: &Reply, t0: Instant) {
        let us = t0.elapsed().as_micros() as u64;
        let st = &self.state;
        st.metrics.record(reply.status, reply.rcode, us);
        if let Some(tx) = &st.log {
            if tx.capacity() == 0 {
                st.metrics.log_dropped();
                return;
            }
            let answers = reply.shared.as_deref().unwrap_or(&reply.answers);
            let e = Entry {
                ts_ms: pinas_core::events::now_ms(),
                client: request.src().ip(),
                name,
                qtype,
                status: reply.status,
                rcode: reply.rcode,
                reply: ReplyKind::of(reply.rcode, answers.iter().map(Record::record_type)),
                upstream: reply.upstream.clone(),
                duration_us: us,
            };
            if tx.try_send(e).is_err() {
                st.metrics.log_dropped();
            }
        }
    }
}

async fn send<R: ResponseHandler>(
    request: &Request,
    mut rh: R,
    rcode: ResponseCode,
    authoritative: bool,
    answers: &[Record],
    authorities: &[Record],
) -> ResponseInfo {
    let mut meta = Metadata::response_from_request(&request.metadata);
    meta.recursion_available = true;
    meta.authoritative = authoritative;
    meta.response_code = rcode;
    // Answer EDNS with EDNS (RFC 6891 section 7), at most 1232 bytes over UDP.
    let edns = request.edns.as_ref().map(|e| {
        let mut r = Edns::new();
        r.set_max_payload(e.max_payload().clamp(512, 1232));
        r
    });
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let resp = builder.build(
        meta,
        answers.iter(),
        authorities.iter(),
        std::iter::empty(),
        std::iter::empty(),
    );
    match rh.send_response(resp).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send DNS response");
            let mut m = Metadata::response_from_request(&request.metadata);
            m.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata: m,
                counts: HeaderCounts::default(),
            })
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        rh: R,
    ) -> ResponseInfo {
        let t0 = Instant::now();
        // The UDP loops check before parsing; this covers TCP.
        if !self.state.allows(request.src().ip()) {
            self.state.metrics.refused();
            return send(request, rh, ResponseCode::Refused, false, &[], &[]).await;
        }
        let meta = &request.metadata;
        if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
            return send(request, rh, ResponseCode::NotImp, false, &[], &[]).await;
        }
        let queries = request.queries.queries();
        let [q] = queries else {
            return send(request, rh, ResponseCode::FormErr, false, &[], &[]).await;
        };
        if q.query_class() != DNSClass::IN {
            return send(request, rh, ResponseCode::NotImp, false, &[], &[]).await;
        }
        let qtype = q.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return send(request, rh, ResponseCode::Refused, false, &[], &[]).await;
        }
        let qname = q.original().name();
        let text = qname_from_wire(request.as_slice()).unwrap_or_else(|| {
            let s = qname.to_ascii().to_ascii_lowercase();
            s.strip_suffix('.').map(str::to_string).unwrap_or(s)
        });
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        let reply = self.answer(&text, qname, qtype, dnssec_ok).await;
        let info = send(
            request,
            rh,
            reply.rcode,
            reply.authoritative,
            reply.shared.as_deref().unwrap_or(&reply.answers),
            &reply.authorities,
        )
        .await;
        self.log(request, text, qtype, &reply, t0);
        info
    }
}

/// Sends one query to `server` and returns the answer; used by tests and health probes.
///
/// # Errors
/// [`crate::upstream::ForwardError`] as [`exchange`].
pub async fn query(
    server: std::net::SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Result<Message, crate::upstream::ForwardError> {
    let up = crate::upstream::UpstreamAddr {
        transport: crate::upstream::Transport::Udp,
        addr: server,
        name: None,
    };
    exchange(
        &up,
        &build_query(&name_of(name), qtype),
        std::time::Duration::from_secs(2),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_name() {
        let mut m = Message::query();
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii("Ads.Example.COM.").unwrap(),
            RecordType::A,
        ));
        let raw = m.to_vec().unwrap();
        assert_eq!(qname_from_wire(&raw).as_deref(), Some("ads.example.com"));
        let mut m = Message::query();
        m.add_query(hickory_proto::op::Query::query(
            Name::root(),
            RecordType::NS,
        ));
        assert_eq!(qname_from_wire(&m.to_vec().unwrap()).as_deref(), Some(""));
        assert_eq!(qname_from_wire(&[0; 5]), None);
        let mut raw = vec![0u8; 12];
        raw.extend_from_slice(b"\x03a b\x00");
        assert_eq!(qname_from_wire(&raw), None);
    }
}
