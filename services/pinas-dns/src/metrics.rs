//! Counters kept in memory for Prometheus (`GET /metrics`), encoded by prometheus-client
//! in the OpenMetrics text format (<https://openmetrics.io>).
//!
//! The query path counts in per-thread shards of plain atomics (cores do not fight over
//! one cache line on every query); a scrape sums them into a snapshot that
//! prometheus-client encodes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::querylog::Status;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

    /// Sums the shards, with `gauges` (`(name, help, value)`) read by the caller.
    fn snapshot(&self, gauges: Vec<(&'static str, &'static str, i64)>) -> Snapshot {
        let l = |f: fn(&Shard) -> &AtomicU64| self.sum(f);
        Snapshot {
            by_status: Status::ALL.map(|st| (st.as_str(), self.sum(|s| &s.by_status[st as usize]))),
            nxdomain: l(|s| &s.nxdomain),
            servfail: l(|s| &s.servfail),
            buckets: std::array::from_fn(|i| self.sum(|s| &s.buckets[i])),
            sum_us: l(|s| &s.sum_us),
            count: l(|s| &s.count),
            log_dropped: l(|s| &s.log_dropped),
            refused: l(|s| &s.refused),
            rate_dropped: l(|s| &s.rate_dropped),
            rate_slipped: l(|s| &s.rate_slipped),
            gauges,
        }
    }

    /// The OpenMetrics text of the counters and `gauges`.
    ///
    /// # Errors
    /// A formatting error from the encoder (not expected when writing to a `String`).
    pub fn render(
        &self,
        gauges: Vec<(&'static str, &'static str, i64)>,
    ) -> Result<String, std::fmt::Error> {
        let mut r = prometheus_client::registry::Registry::default();
        r.register_collector(Box::new(self.snapshot(gauges)));
        let mut out = String::with_capacity(2048);
        prometheus_client::encoding::text::encode(&mut out, &r)?;
        Ok(out)
    }
}

/// The counters summed at one scrape. Help texts have no final period: the encoder adds
/// one. Counter names have no `_total`: the encoder adds it to each sample.
#[derive(Debug)]
struct Snapshot {
    by_status: [(&'static str, u64); 5],
    nxdomain: u64,
    servfail: u64,
    buckets: [u64; BUCKETS_US.len()],
    sum_us: u64,
    count: u64,
    log_dropped: u64,
    refused: u64,
    rate_dropped: u64,
    rate_slipped: u64,
    gauges: Vec<(&'static str, &'static str, i64)>,
}

fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &'static str,
    values: &[(&'static str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (v, n) in values {
        let labels = vec![(label, *v)];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    n: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(n).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        counter_family(
            &mut enc,
            "pinas_dns_queries",
            "DNS queries answered, by how they were answered",
            "status",
            &self.by_status,
        )?;
        counter_family(
            &mut enc,
            "pinas_dns_responses",
            "DNS responses with an error code",
            "rcode",
            &[("NXDOMAIN", self.nxdomain), ("SERVFAIL", self.servfail)],
        )?;
        let mut buckets: Vec<(f64, u64)> = BUCKETS_US
            .iter()
            .zip(self.buckets)
            .map(|(b, n)| (*b as f64 / 1e6, n))
            .collect();
        let in_buckets: u64 = self.buckets.iter().sum();
        buckets.push((f64::INFINITY, self.count.saturating_sub(in_buckets)));
        enc.encode_descriptor(
            "pinas_dns_query_duration_seconds",
            "Time from request to response",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            self.sum_us as f64 / 1e6,
            self.count,
            &buckets,
            None,
        )?;
        counter(
            &mut enc,
            "pinas_dns_query_log_dropped",
            "Query-log entries dropped under load",
            self.log_dropped,
        )?;
        counter(
            &mut enc,
            "pinas_dns_refused",
            "Queries refused: the client is not on an allowed network",
            self.refused,
        )?;
        counter_family(
            &mut enc,
            "pinas_dns_rate_limited",
            "UDP queries over the rate limit, dropped or answered with TC",
            "action",
            &[
                ("dropped", self.rate_dropped),
                ("slipped", self.rate_slipped),
            ],
        )?;
        for (name, help, v) in &self.gauges {
            ConstGauge::new(*v).encode(enc.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

/// The whole exposition for the role: the counters, and gauges read from `st` (blocked
/// names, cache size, healthy upstreams, the blocking switch).
///
/// # Errors
/// A formatting error from the encoder (not expected).
pub fn render_state(st: &crate::state::DnsState) -> Result<String, std::fmt::Error> {
    let healthy = st
        .forwarder
        .upstreams()
        .iter()
        .filter(|u| u.is_healthy())
        .count();
    let blocking = st.blocking.load();
    st.metrics.render(vec![
        (
            "pinas_dns_blocked_domains",
            "Distinct names on the blocklists",
            st.blocked.load().len() as i64,
        ),
        (
            "pinas_dns_cache_entries",
            "Answers in the cache",
            st.cache.len() as i64,
        ),
        (
            "pinas_dns_upstreams_healthy",
            "Upstreams answering",
            healthy as i64,
        ),
        (
            "pinas_dns_blocking_enabled",
            "1 while blocklists and the denylist apply, 0 while blocking is off",
            i64::from(blocking.enabled),
        ),
        (
            "pinas_dns_blocking_disabled_until_seconds",
            "Unix time when blocking turns back on by itself; 0 when no timer runs",
            blocking.until.unwrap_or(0),
        ),
    ])
}
