//! The fake plugs and the database simulation that `scripts/bench-power` runs.
//!
//! ```text
//! power-bench fakes N        # N fake P110s on loopback; prints "plug <host:port>" per
//!                            # line, then "ready"; runs until stdin closes
//! power-bench db PLUGS DAYS  # DAYS of 10 s samples of PLUGS plugs stored and rolled up
//!                            # as `pinas power` does; prints the database's size per
//!                            # table and its growth per plug per day
//! ```
//!
//! The fake plugs accept the account `bench@example.com` / `bench`.

use std::io::BufRead;
use std::sync::Arc;

use pinas_core::EventBus;
use pinas_power::fake::{FakeOptions, FakePlug};
use pinas_power::sampler::Reading;
use pinas_power::{energy, fixtures, store, Power, Settings};

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "bench";

fn usage() -> ! {
    eprintln!("usage: power-bench fakes N | power-bench db PLUGS DAYS");
    std::process::exit(64);
}

fn num(arg: Option<String>) -> i64 {
    arg.and_then(|a| a.parse().ok()).unwrap_or_else(|| usage())
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("fakes") => fakes(num(args.next()) as usize),
        Some("db") => db(num(args.next()), num(args.next())),
        _ => usage(),
    }
}

fn fakes(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut plugs = Vec::new();
        let fixtures = fixtures::generated();
        for i in 0..n {
            let f = fixtures[i % fixtures.len()].clone();
            let p = FakePlug::start(FakeOptions::new(f, EMAIL, PASSWORD))
                .await
                .expect("a loopback port");
            let base = 5.0 + i as f64;
            p.set_curve(Arc::new(move |t| base + 30.0 * (t / 20.0).sin().abs()));
            println!("plug {}", p.address());
            plugs.push(p);
        }
        println!("ready");
        // Until stdin closes (the script ends).
        let _ = tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for _ in stdin.lock().lines() {}
        })
        .await;
        drop(plugs);
    });
}

fn db(plugs: i64, days: i64) {
    const STEP: i64 = 10_000;
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let s = Settings::default();
    let power = Power::open(dir.path(), s.clone(), EventBus::new(None)).expect("open");
    let db = power.db().clone();
    let ids: Vec<i64> = (0..plugs)
        .map(|i| {
            store::insert_plug(
                &db,
                &format!("p{i}"),
                &format!("10.0.0.{i}"),
                false,
                false,
                0,
            )
            .expect("plug")
            .id
        })
        .collect();
    let start = 1_793_491_200_000i64;
    // Per plug: today's and the month's counters (Wh), the last reading's, the total.
    type Counters = (f64, f64, Option<(i64, i64)>, i64);
    let mut state: Vec<Counters> = vec![(0.0, 0.0, None, 0); ids.len()];
    let file = dir.path().join(store::DB_FILE);
    let size = || {
        let c = db.conn();
        let _ = c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        let pages: i64 = c
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap_or(0);
        let free: i64 = c
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap_or(0);
        let page: i64 = c
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap_or(4096);
        ((pages - free) * page, pages * page)
    };
    let mut used_at_day: Vec<i64> = Vec::new();
    let t0 = std::time::Instant::now();
    for d in 0..days {
        // An hour at a time, rolled up after each, as the minute timer would.
        for h in 0..24 {
            let mut batch = Vec::new();
            for (k, &id) in ids.iter().enumerate() {
                let (today, month, prev, total) = &mut state[k];
                for i in 0..360 {
                    let t = start + d * DAY + h * 3_600_000 + i * STEP;
                    if t % DAY == 0 {
                        *today = 0.0;
                    }
                    let w = 8.0 + k as f64 + if (8..18).contains(&h) { 40.0 } else { 0.0 };
                    *today += w * STEP as f64 / 3_600_000.0;
                    *month += w * STEP as f64 / 3_600_000.0;
                    let r = Reading {
                        power_w: w,
                        today_wh: *today as i64,
                        month_wh: *month as i64,
                    };
                    *total += energy::delta(*prev, (r.today_wh, r.month_wh));
                    *prev = Some((r.today_wh, r.month_wh));
                    batch.push(store::Write::Sample {
                        plug: id,
                        at_ms: t,
                        reading: r,
                        total_wh: *total,
                    });
                }
            }
            store::write_batch(&db, &batch).expect("samples");
            let now = start + d * DAY + (h + 1) * 3_600_000 + 60_000;
            store::rollup(&db, now, &s).expect("rollup");
        }
        used_at_day.push(size().0);
    }
    let (used, file_bytes) = size();
    let (samples, minutes, hours, _) = store::row_counts(&db).expect("counts");
    println!(
        "simulated {plugs} plugs x {days} days of 10 s samples in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    println!("rows: samples {samples}, minutes {minutes}, hours {hours}");
    println!(
        "database: {} KiB used, file {} KiB ({})",
        used / 1024,
        file_bytes / 1024,
        file.display()
    );
    let per_plug = |b: i64| b as f64 / plugs as f64 / 1024.0;
    println!("per plug: {:.1} KiB after {days} days", per_plug(used));
    // Bytes per table (rows and index pages), from SQLite's dbstat table.
    let tables: Vec<(String, i64)> = {
        let c = db.conn();
        let mut st = c
            .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY name")
            .expect("dbstat");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("dbstat")
            .collect::<Result<_, _>>()
            .expect("dbstat")
    };
    let bytes = |t: &str| {
        tables
            .iter()
            .filter(|(n, _)| n == t)
            .map(|(_, b)| *b)
            .sum::<i64>()
    };
    println!(
        "per plug, bounded by retention: raw samples (24 h) {:.0} KiB, 1-minute means (30 days) {:.0} KiB",
        per_plug(bytes("samples")),
        per_plug(bytes("minutes"))
    );
    let hour_days = hours as f64 / plugs as f64 / 24.0;
    println!(
        "growth per plug per day after downsampling (1-hour means, kept): {:.2} KiB ({} rows in {:.0} days)",
        per_plug(bytes("hours")) / hour_days.max(1.0),
        hours,
        hour_days
    );
    for (day, b) in used_at_day.iter().enumerate() {
        if day == 0 || (day + 1) % 5 == 0 || day + 1 == used_at_day.len() {
            println!(
                "  day {:>3}: {:.1} KiB per plug in use",
                day + 1,
                per_plug(*b)
            );
        }
    }
}
