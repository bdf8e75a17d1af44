//! Fixtures for fuzzing and tests: a handler over a fresh database with a few local
//! records, rules and a small blocklist, and no upstream (forwarded names get SERVFAIL
//! at once, without network traffic).

use std::path::Path;

use crate::domains::{DomainSetBuilder, Match};
use crate::handler::Handler;
use crate::state::DnsState;
use crate::store;
use crate::zone::LocalType;
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
    for (name, t, value) in [
        ("printer.home", LocalType::A, "192.168.1.20"),
        ("www.home", LocalType::Cname, "printer.home"),
        ("*.lab.home", LocalType::Aaaa, "fd00::30"),
        ("loop.home", LocalType::Cname, "loop.home.x"),
        ("loop.home.x", LocalType::Cname, "loop.home"),
    ] {
        let r = store::NewRecord {
            name,
            rtype: t,
            value,
            ttl_secs: 300,
            comment: "",
        };
        store::insert_record(&st.db, &r).expect("insert record");
    }
    store::insert_rule(&st.db, "allow", "ok.ads.test", "").expect("insert rule");
    st.reload_zone().expect("zone");
    st.reload_rules().expect("rules");
    let mut b = DomainSetBuilder::default();
    b.insert("ads.test", Match::Subtree);
    b.insert("exact.test", Match::Exact);
    st.blocked.store(std::sync::Arc::new(b.build()));
    Handler { state: st }
}
