//! 30 days of generated samples (10 s apart, with outages and counter resets) rolled up
//! into 1-minute and 1-hour means, checked against means computed here from the raw
//! samples; retention deletes only what is folded and past its time; energy per day
//! comes out as the samples' totals say.

use std::collections::BTreeMap;

use pinas_core::EventBus;
use pinas_power::energy::{self, Period};
use pinas_power::sampler::Reading;
use pinas_power::store::{self, Resolution};
use pinas_power::{Power, Settings};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

#[derive(Default, Debug)]
struct Agg {
    sum: f64,
    n: i64,
    min: f64,
    max: f64,
    active: i64,
    total: i64,
}

fn fold(
    aggs: &mut BTreeMap<i64, Agg>,
    key: i64,
    w: f64,
    total: i64,
    threshold: f64,
    step_secs: i64,
) {
    let a = aggs.entry(key).or_insert(Agg {
        min: f64::MAX,
        max: f64::MIN,
        ..Agg::default()
    });
    a.sum += w;
    a.n += 1;
    a.min = a.min.min(w);
    a.max = a.max.max(w);
    a.total = a.total.max(total);
    if w >= threshold {
        a.active += step_secs;
    }
}

#[test]
fn thirty_days_of_samples_downsample_to_the_expected_means() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::default();
    let power = Power::open(dir.path(), s.clone(), EventBus::new(None)).unwrap();
    let db = power.db().clone();
    let plug = store::insert_plug(&db, "NAS", "127.0.0.1:9", true, false, 0)
        .unwrap()
        .id;

    // 2026-11-01 00:00 UTC, every 10 s for 30 days; the NAS works 08:00 to 18:00
    // (60 W with a ripple), idles at 6 W otherwise; off the network 02:00-03:30 on day
    // 4 and day 17; its day counter resets at midnight, its month counter on day 20.
    let start = 1_793_491_200_000i64;
    let step = 10_000;
    let n = 30 * DAY / step;
    let (mut today, mut month, mut energy_since_wh) = (0.0f64, 0.0f64, 0.0f64);
    let mut prev = None;
    let mut total = 0;
    let mut rows = Vec::with_capacity(n as usize);
    let outage = |t: i64| {
        let d = (t - start) / DAY;
        let in_day = (t - start) % DAY;
        (d == 4 || d == 17) && (2 * HOUR..3 * HOUR + 30 * MIN).contains(&in_day)
    };
    for i in 0..n {
        let t = start + i * step;
        let in_day = (t - start) % DAY;
        if in_day == 0 {
            today = 0.0;
            if (t - start) / DAY == 20 {
                month = 0.0;
            }
        }
        let hour = in_day / HOUR;
        let w = if (8..18).contains(&hour) {
            60.0 + ((i % 7) as f64 - 3.0)
        } else {
            6.0
        };
        let wh = w * step as f64 / 3_600_000.0;
        today += wh;
        month += wh;
        energy_since_wh += wh;
        if outage(t) {
            continue;
        }
        let r = Reading {
            power_w: w,
            today_wh: today as i64,
            month_wh: month as i64,
        };
        total += energy::delta(prev, (r.today_wh, r.month_wh));
        prev = Some((r.today_wh, r.month_wh));
        rows.push((t, r, total));
    }
    for chunk in rows.chunks(20_000) {
        store::insert_samples(&db, plug, chunk).unwrap();
    }
    let end = start + 30 * DAY;

    // Rolled up once a day, as a box that was off now and then would.
    let mut now = start + DAY + 17 * MIN;
    while now < end + 2 * MIN {
        store::rollup(&db, now, &s).unwrap();
        now += DAY;
    }
    store::rollup(&db, end + 2 * MIN, &s).unwrap();

    // The means computed here, from the raw samples.
    let secs = (s.interval_ms / 1000) as i64;
    let (mut minutes, mut hours) = (BTreeMap::new(), BTreeMap::new());
    for (t, r, total) in &rows {
        fold(
            &mut minutes,
            t / MIN * MIN,
            r.power_w,
            *total,
            s.nas_threshold_w,
            secs,
        );
        fold(
            &mut hours,
            t / HOUR * HOUR,
            r.power_w,
            *total,
            s.nas_threshold_w,
            secs,
        );
    }
    // Minutes older than 30 days before the last rollup are gone.
    let last_rollup = end + 2 * MIN;
    minutes.retain(|&at, _| at >= last_rollup - 30 * DAY);
    let got_m = store::series(&db, plug, Resolution::Minute, start, end).unwrap();
    assert_eq!(
        got_m.len(),
        minutes.len(),
        "one mean per minute with samples, none in outages"
    );
    for p in &got_m {
        let a = &minutes[&p.at_ms];
        assert!(
            (p.power_w - a.sum / a.n as f64).abs() < 1e-9,
            "minute {}",
            p.at_ms
        );
        assert_eq!(
            (p.min_w, p.max_w, p.samples, p.total_wh),
            (a.min, a.max, a.n, a.total)
        );
    }
    let got_h = store::series(&db, plug, Resolution::Hour, start, end).unwrap();
    assert_eq!(got_h.len(), hours.len());
    for p in &got_h {
        let a = &hours[&p.at_ms];
        assert!(
            (p.power_w - a.sum / a.n as f64).abs() < 1e-9,
            "hour {}",
            p.at_ms
        );
        assert_eq!(
            (p.min_w, p.max_w, p.samples, p.total_wh),
            (a.min, a.max, a.n, a.total)
        );
    }
    // 6 W is idle, 57-63 W is work: 10 hours a day (less the outages, which were idle).
    assert!(got_h.iter().all(|p| p.min_w >= 6.0 && p.max_w <= 63.0));

    // Retention: raw samples for the last 24 h only, minutes for 30 days, hours kept.
    let raw = store::series(&db, plug, Resolution::Raw, start, end).unwrap();
    assert!(raw.first().unwrap().at_ms >= last_rollup - DAY);
    assert!(raw.len() as i64 <= DAY / step + 1);
    assert_eq!(store::row_counts(&db).unwrap().1, minutes.len() as i64);

    // Energy per day from the stored totals equals the totals of the raw samples; over
    // the month it is within a few Wh of what was drawn (each reset loses < 1 Wh).
    let tz = jiff::tz::TimeZone::UTC;
    let hourly = store::hourly(&db, plug, start, end).unwrap();
    let days = energy::usage(&tz, Period::Day, start, end, &hourly, &s.tariff);
    assert_eq!(days.len(), 30);
    let mut expect_prev = 0;
    for d in &days {
        let last = rows
            .iter()
            .filter(|(t, ..)| *t < d.end_ms)
            .map(|(_, _, tot)| *tot)
            .max()
            .unwrap();
        assert_eq!(d.energy_wh, last - expect_prev, "{}", d.period);
        expect_prev = last;
        // 10 working hours, at 10 s per sample; the other 14 idle at 6 W (standby),
        // less the outages, which count as neither.
        assert_eq!(d.active_secs, 10 * 3600, "{}", d.period);
        let day = (d.start_ms - start) / DAY;
        let outage_secs = if day == 4 || day == 17 { 5400 } else { 0 };
        assert_eq!(d.standby_secs, 14 * 3600 - outage_secs, "{}", d.period);
    }
    let sum: i64 = days.iter().map(|d| d.energy_wh).sum();
    assert!(
        (energy_since_wh - sum as f64).abs() < 32.0,
        "{energy_since_wh} drawn, {sum} counted"
    );
    let expected_cost = sum as f64 / 1000.0 * 0.30;
    let cost: f64 = days.iter().map(|d| d.cost).sum();
    assert!(
        (cost - expected_cost).abs() < 0.01,
        "{cost} vs {expected_cost}"
    );

    // Gaps are not filled in: no minute inside an outage.
    assert!(got_m
        .iter()
        .all(|p| !outage(p.at_ms) || !outage(p.at_ms + MIN - 1)));
}
