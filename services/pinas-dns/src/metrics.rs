//! Counters kept in memory for Prometheus (`GET /metrics`, text exposition format 0.0.4,
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::querylog::Status;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds of the latency histogram buckets, microseconds.
const BUCKETS_US: [u64; 8] = [100, 250, 1_000, 5_000, 20_000, 100_000, 500_000, 2_000_000];

/// One set of counters, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    by_status: [AtomicU64; 5],
    nxdomain: AtomicU64,
    servfail: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
    log_dropped: AtomicU64,
    refused: AtomicU64,
    rate_dropped: AtomicU64,
    rate_slipped: AtomicU64,
}

const SHARDS: usize = 8;

/// Process-wide DNS counters. Each thread counts in its own shard (cores do not fight
/// over one cache line on every query); reading sums the shards.
#[derive(Default)]
pub struct Metrics {
    shards: [Shard; SHARDS],
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Metrics {
    fn mine(&self) -> &Shard {
        &self.shards[SHARD.with(|s| *s)]
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Counts one answered query.
    pub fn record(&self, status: Status, rcode: hickory_proto::op::ResponseCode, micros: u64) {
        use hickory_proto::op::ResponseCode as R;
        let me = self.mine();
        me.by_status[status as usize].fetch_add(1, Ordering::Relaxed);
        match rcode {
            R::NXDomain => {
                me.nxdomain.fetch_add(1, Ordering::Relaxed);
            }
            R::ServFail => {
                me.servfail.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        for (i, b) in BUCKETS_US.iter().enumerate() {
            if micros <= *b {
                me.buckets[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        me.sum_us.fetch_add(micros, Ordering::Relaxed);
        me.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a query-log entry dropped because the writer fell behind.
    pub fn log_dropped(&self) {
        self.mine().log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a query refused because its client is not on an allowed network.
    pub fn refused(&self) {
        self.mine().refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a query over the rate limit: dropped, or answered with TC (`slipped`).
    pub fn rate_limited(&self, slipped: bool) {
        let me = self.mine();
        if slipped {
            me.rate_slipped.fetch_add(1, Ordering::Relaxed);
        } else {
            me.rate_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queries answered with `status` since start.
    pub fn count(&self, status: Status) -> u64 {
        self.sum(|s| &s.by_status[status as usize])
    }

    /// Renders the Prometheus text format; `gauges` are extra `(name, help, value)` lines.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut s = String::with_capacity(2048);
        let l = |f: fn(&Shard) -> &AtomicU64| self.sum(f);
        s.push_str(
            "# HELP pinas_dns_queries_total DNS queries answered, by how they were answered.\n",
        );
        s.push_str("# TYPE pinas_dns_queries_total counter\n");
        for st in Status::ALL {
            let _ = writeln!(
                s,
                "pinas_dns_queries_total{{status=\"{}\"}} {}",
                st.as_str(),
                self.sum(|s| &s.by_status[st as usize])
            );
        }
        s.push_str("# HELP pinas_dns_responses_total DNS responses with an error code.\n");
        s.push_str("# TYPE pinas_dns_responses_total counter\n");
        let _ = writeln!(
            s,
            "pinas_dns_responses_total{{rcode=\"NXDOMAIN\"}} {}",
            l(|s| &s.nxdomain)
        );
        let _ = writeln!(
            s,
            "pinas_dns_responses_total{{rcode=\"SERVFAIL\"}} {}",
            l(|s| &s.servfail)
        );
        s.push_str("# HELP pinas_dns_query_duration_seconds Time from request to response.\n");
        s.push_str("# TYPE pinas_dns_query_duration_seconds histogram\n");
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.sum(|s| &s.buckets[i]);
            let _ = writeln!(
                s,
                "pinas_dns_query_duration_seconds_bucket{{le=\"{}\"}} {cum}",
                *b as f64 / 1e6
            );
        }
        let _ = writeln!(
            s,
            "pinas_dns_query_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            l(|s| &s.count)
        );
        let _ = writeln!(
            s,
            "pinas_dns_query_duration_seconds_sum {}",
            l(|s| &s.sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "pinas_dns_query_duration_seconds_count {}",
            l(|s| &s.count)
        );
        s.push_str(
            "# HELP pinas_dns_query_log_dropped_total Query-log entries dropped under load.\n",
        );
        s.push_str("# TYPE pinas_dns_query_log_dropped_total counter\n");
        let _ = writeln!(
            s,
            "pinas_dns_query_log_dropped_total {}",
            l(|s| &s.log_dropped)
        );
        s.push_str("# HELP pinas_dns_refused_total Queries refused: the client is not on an allowed network.\n");
        s.push_str("# TYPE pinas_dns_refused_total counter\n");
        let _ = writeln!(s, "pinas_dns_refused_total {}", l(|s| &s.refused));
        s.push_str("# HELP pinas_dns_rate_limited_total UDP queries over the rate limit, dropped or answered with TC.\n");
        s.push_str("# TYPE pinas_dns_rate_limited_total counter\n");
        let _ = writeln!(
            s,
            "pinas_dns_rate_limited_total{{action=\"dropped\"}} {}",
            l(|s| &s.rate_dropped)
        );
        let _ = writeln!(
            s,
            "pinas_dns_rate_limited_total{{action=\"slipped\"}} {}",
            l(|s| &s.rate_slipped)
        );
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        s
    }
}

/// The whole exposition for the role: the counters, and gauges read from `st` (blocked
/// names, cache size, healthy upstreams, the blocking switch).
pub fn render_state(st: &crate::state::DnsState) -> String {
    let healthy = st
        .forwarder
        .upstreams()
        .iter()
        .filter(|u| u.is_healthy())
        .count();
    let blocking = st.blocking.load();
    st.metrics.render(&[
        (
            "pinas_dns_blocked_domains",
            "Distinct names on the blocklists.",
            st.blocked.load().len() as f64,
        ),
        (
            "pinas_dns_cache_entries",
            "Answers in the cache.",
            st.cache.len() as f64,
        ),
        (
            "pinas_dns_upstreams_healthy",
            "Upstreams answering.",
            healthy as f64,
        ),
        (
            "pinas_dns_blocking_enabled",
            "1 while blocklists and the denylist apply, 0 while blocking is off.",
            if blocking.enabled { 1.0 } else { 0.0 },
        ),
        (
            "pinas_dns_blocking_disabled_until_seconds",
            "Unix time when blocking turns back on by itself; 0 when no timer runs.",
            blocking.until.unwrap_or(0) as f64,
        ),
    ])
}
