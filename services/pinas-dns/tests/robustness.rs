//! The fuzz targets' properties on stable Rust, with a fixed seed: random and mutated
//! datagrams through the real handler, and random bytes as blocklists.

use pinas_dns::domains::DomainSetBuilder;
use pinas_dns::lists::{parse_line, Line};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn query(name: &str, qtype: hickory_proto::rr::RecordType) -> Vec<u8> {
    let mut m = hickory_proto::op::Message::query();
    m.add_query(hickory_proto::op::Query::query(
        name.parse().unwrap(),
        qtype,
    ));
    m.to_vec().unwrap()
}

#[tokio::test]
async fn mutated_datagrams_get_wellformed_answers_or_none() {
    use hickory_proto::rr::RecordType as T;
    let dir = tempfile::tempdir().unwrap();
    let h = pinas_dns::testing::handler_with_fixtures(dir.path()).await;
    let src = "127.0.0.1:5300".parse().unwrap();
    let seeds = [
        query("printer.home.", T::A),
        query("www.home.", T::A),
        query("x.lab.home.", T::AAAA),
        query("loop.home.", T::A),
        query("a.ads.test.", T::A),
        query("ok.ads.test.", T::A),
        query("nas.home.", T::ANY),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut answered, mut dropped) = (0, 0);
    for i in 0..30_000 {
        let mut p = seeds[i % seeds.len()].clone();
        match rng.next() % 4 {
            0 => p.truncate(rng.next() as usize % (p.len() + 1)),
            1 => {
                for _ in 0..1 + rng.next() % 4 {
                    let j = rng.next() as usize % p.len();
                    p[j] = rng.next() as u8;
                }
            }
            2 => p.extend((0..rng.next() % 64).map(|_| rng.next() as u8)),
            _ => p = (0..rng.next() % 300).map(|_| rng.next() as u8).collect(),
        }
        match pinas_dns::udp::answer_raw(&h, &p, src).await {
            Some(a) => {
                answered += 1;
                assert!(a.len() >= 12);
                assert_eq!(&a[..2], &p[..2]);
                assert_ne!(a[2] & 0x80, 0);
                hickory_proto::op::Message::from_vec(&a).expect("answers parse");
            }
            None => dropped += 1,
        }
    }
    eprintln!("{answered} answered, {dropped} dropped");
    assert!(answered > 10_000);
    // Unmodified queries still get the right answers.
    let a = pinas_dns::udp::answer_raw(&h, &seeds[0], src)
        .await
        .unwrap();
    let m = hickory_proto::op::Message::from_vec(&a).unwrap();
    assert_eq!(m.answers.len(), 1);
    let a = pinas_dns::udp::answer_raw(&h, &seeds[3], src)
        .await
        .unwrap();
    let m = hickory_proto::op::Message::from_vec(&a).unwrap();
    assert_eq!(m.answers.len(), 8, "a CNAME loop stops after 8 steps");
}

#[test]
fn random_bytes_as_blocklists() {
    let mut rng = Rng(42);
    let alphabet = b"abc.-_|^*#!$ \t0123456789:\n\n\n\xff";
    for _ in 0..2_000 {
        let data: Vec<u8> = (0..rng.next() % 400)
            .map(|_| alphabet[rng.next() as usize % alphabet.len()])
            .collect();
        let mut b = DomainSetBuilder::default();
        pinas_dns::blocklists::parse_reader(&mut &data[..], &mut b).unwrap();
        let set = b.build();
        if let Ok(text) = std::str::from_utf8(&data) {
            for line in text.lines() {
                if let Line::Names(names) = parse_line(line) {
                    for (n, _) in names {
                        assert!(set.matches(&n).is_some(), "{n:?}");
                    }
                }
            }
        }
    }
}
