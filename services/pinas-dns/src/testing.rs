//! Fixtures for fuzzing and tests: a handler over a fresh database with a few local
//! records, rules and a small blocklist, and no upstream (forwarded names get SERVFAIL
//! at once, without network traffic).

use std::path::Path;

use crate::domains::{DomainSetBuilder, Match};
use crate::handler::Handler;
use crate::state::DnsState;
use crate::DnsConfig;

/// Builds a [`Handler`] whose state lives in `dir`.
///
/// # Panics
/// When the database in `dir` cannot be created (a fixture, not production code).
pub async fn handler_with_fixtures(dir: &Path) -> Handler {
    let db = crate::store::open(dir, None).expect("test database");
    let dns = DnsConfig {
        upstreams: Vec::new(),
        query_log: false,
        ..DnsConfig::default()
    };
    let st = DnsState::new(
        dns,
        db,
        pinas_core::EventBus::new(None),
        dir.to_path_buf(),
        None,
    )
    .expect("state");
    {
        let conn = st.db.conn();
        for (n, t, v) in [
            ("printer.home", "A", "192.168.1.20"),
            ("www.home", "CNAME", "printer.home"),
            ("*.lab.home", "AAAA", "fd00::30"),
            ("loop.home", "CNAME", "loop.home.x"),
            ("loop.home.x", "CNAME", "loop.home"),
        ] {
            conn.execute(
                "INSERT INTO dns_records (name, type, value, ttl_secs, created_at) VALUES (?1, ?2, ?3, 300, 0)",
                [n, t, v],
            )
            .expect("insert record");
        }
        conn.execute(
            "INSERT INTO dns_rules (kind, pattern, created_at) VALUES ('allow', 'ok.ads.test', 0)",
            [],
        )
        .expect("insert rule");
    }
    st.reload_zone().expect("zone");
    st.reload_rules().expect("rules");
    let mut b = DomainSetBuilder::default();
    b.insert("ads.test", Match::Subtree);
    b.insert("exact.test", Match::Exact);
    st.blocked.store(std::sync::Arc::new(b.build()));
    Handler { state: st }
}
