//! Any bytes as a blocklist file: parsing never panics, every line is counted, and every
//! name the parser accepts is then found in the built set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinas_dns::domains::DomainSetBuilder;
use pinas_dns::lists::{parse_line, Line};

fuzz_target!(|data: &[u8]| {
    let mut b = DomainSetBuilder::default();
    let stats = pinas_dns::blocklists::parse_reader(&mut &data[..], &mut b).unwrap();
    let lines = data.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count() as u64;
    assert!(stats.lines >= lines.saturating_sub(1));
    let set = b.build();
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            if let Line::Names(names) = parse_line(line) {
                for (n, _) in names {
                    assert!(set.matches(&n).is_some(), "{n:?} parsed but not found");
                }
            }
        }
    }
});
