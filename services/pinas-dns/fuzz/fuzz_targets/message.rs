//! Any datagram: parse it as hickory does, answer it through the PiNAS handler (local
//! records, a blocklist, the switch; no upstream), and check the answer is a well-formed
//! response with the query's ID, or that nothing is sent.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Env {
    rt: tokio::runtime::Runtime,
    handler: pinas_dns::handler::Handler,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let handler = rt.block_on(pinas_dns::testing::handler_with_fixtures(dir.path()));
        Env { rt, handler, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let e = env();
    let src = "127.0.0.1:5300".parse().unwrap();
    let answer = e.rt.block_on(pinas_dns::udp::answer_raw(&e.handler, data, src));
    if let Some(a) = answer {
        assert!(a.len() >= 12, "short answer");
        assert_eq!(&a[..2], &data[..2], "answer ID differs from the query's");
        assert_ne!(a[2] & 0x80, 0, "answer without QR");
    }
});
