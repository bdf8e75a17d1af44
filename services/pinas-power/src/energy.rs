//! Energy from the plugs' counters: a running total that never goes backwards across the
//! plugs' resets, energy and cost per day or month, and running time above a threshold.
//!
//! A P110 counts energy since local midnight (`today_energy`) and since the first of the
//! month (`month_energy`), in Wh. Both fall back to zero at midnight, at a new month and
//! when the plug is reset. PiNAS adds up the differences between readings
//! ([`delta`]); a reading after a gap adds what the plug counted during the gap, which
//! is measured, not made up.

use jiff::tz::TimeZone;
use jiff::{civil::Date, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::config::Tariff;

/// The energy between two readings, Wh (never negative), from the counters
/// `(today_wh, month_wh)` of the previous reading (`None` for a plug's first, or when
/// unknown: counts nothing) and of this one.
///
/// - today's counter grew: its growth;
/// - it fell (midnight) but the month's did not: the month's growth, which covers the
///   energy before and after midnight;
/// - both fell (a new month, a reset): today's counter, the energy since the reset.
pub fn delta(prev: Option<(i64, i64)>, cur: (i64, i64)) -> i64 {
    let Some((pt, pm)) = prev.filter(|&(t, m)| t >= 0 && m >= 0) else {
        return 0;
    };
    let (t, m) = (cur.0.max(0), cur.1.max(0));
    if t >= pt {
        t - pt
    } else if m >= pm {
        m - pm
    } else {
        t
    }
}

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = PowerPeriod)]
pub enum Period {
    Day,
    Month,
}

/// Energy, cost and running time of one plug in one day or month (local time).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// `2026-12-03` (day) or `2026-12` (month).
    pub period: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub energy_wh: i64,
    /// `energy_wh` priced hour by hour with the tariff, in the settings' currency.
    pub cost: f64,
    /// Seconds the plug drew at least the NAS threshold (the NAS working).
    pub active_secs: i64,
    /// Seconds it drew at least the standby level but less than the threshold (the NAS
    /// asleep or idle with its disks spun down).
    pub standby_secs: i64,
}

fn ms(z: &jiff::ZonedDateTime) -> i64 {
    z.timestamp().as_millisecond()
}

fn start_of(period: Period, d: Date) -> Date {
    match period {
        Period::Day => d,
        Period::Month => d.first_of_month(),
    }
}

fn next(period: Period, d: Date) -> Date {
    match period {
        Period::Day => d.checked_add(1.day()).unwrap_or(d),
        Period::Month => d.checked_add(1.month()).unwrap_or(d),
    }
}

fn label(period: Period, d: Date) -> String {
    match period {
        Period::Day => d.strftime("%Y-%m-%d").to_string(),
        Period::Month => d.strftime("%Y-%m").to_string(),
    }
}

fn local(tz: &TimeZone, at_ms: i64) -> jiff::ZonedDateTime {
    Timestamp::from_millisecond(at_ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz.clone())
}

/// A plug's history hour by hour, as [`crate::store::hourly`] and
/// [`crate::store::hourly_active_secs`] read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hourly {
    /// The running total before the range, Wh (`None`: the plug's history starts later,
    /// from 0).
    pub base_wh: Option<i64>,
    /// `(hour_start_ms, total_wh)`: the total at the end of each hour with data,
    /// ascending.
    pub totals: Vec<(i64, i64)>,
    /// `(hour_start_ms, active_secs, standby_secs)`: seconds at or above the NAS
    /// threshold, and between the standby level and the threshold.
    pub active: Vec<(i64, i64, i64)>,
}

/// The days or months (local time in `tz`) that meet `[from_ms, to_ms)`, each with the
/// energy of the hours in it, priced with `tariff` at each hour's local hour, and the
/// running time. Energy is counted in the hour whose readings show it.
pub fn usage(
    tz: &TimeZone,
    period: Period,
    from_ms: i64,
    to_ms: i64,
    h: &Hourly,
    tariff: &Tariff,
) -> Vec<UsageRow> {
    let (base_wh, totals, active) = (h.base_wh, &h.totals, &h.active);
    let mut rows = Vec::new();
    let mut d = start_of(period, local(tz, from_ms).date());
    while rows.len() < 10_000 {
        let Ok(start) = d.to_zoned_datetime(tz.clone()) else {
            break;
        };
        let n = next(period, d);
        let Ok(end) = n.to_zoned_datetime(tz.clone()) else {
            break;
        };
        if ms(&start) >= to_ms {
            break;
        }
        rows.push(UsageRow {
            period: label(period, d),
            start_ms: ms(&start),
            end_ms: ms(&end),
            energy_wh: 0,
            cost: 0.0,
            active_secs: 0,
            standby_secs: 0,
        });
        d = n;
    }
    let find = |rows: &mut Vec<UsageRow>, at: i64| -> Option<usize> {
        rows.iter().position(|r| r.start_ms <= at && at < r.end_ms)
    };
    let mut prev = base_wh.unwrap_or(0);
    for &(h, total) in totals.iter() {
        let e = (total - prev).max(0);
        prev = prev.max(total);
        if let Some(i) = find(&mut rows, h) {
            let hour = local(tz, h).hour().clamp(0, 23) as u8;
            rows[i].energy_wh += e;
            rows[i].cost += e as f64 / 1000.0 * tariff.price_at(hour);
        }
    }
    for &(h, secs, standby) in active.iter() {
        if let Some(i) = find(&mut rows, h) {
            rows[i].active_secs += secs;
            rows[i].standby_secs += standby;
        }
    }
    for r in &mut rows {
        r.cost = (r.cost * 10_000.0).round() / 10_000.0;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TariffPeriod;

    #[test]
    fn resets_never_make_the_total_go_backwards_or_count_twice() {
        assert_eq!(delta(None, (46, 430)), 0);
        assert_eq!(delta(Some((46, 430)), (47, 431)), 1);
        // Midnight: today starts over, the month goes on: the month's growth.
        assert_eq!(delta(Some((120, 500)), (2, 503)), 3);
        // A new month (or a reset): both start over: what was counted since.
        assert_eq!(delta(Some((120, 5000)), (2, 2)), 2);
        // Unchanged and unknown counters.
        assert_eq!(delta(Some((5, 5)), (5, 5)), 0);
        assert_eq!(delta(Some((-1, -1)), (5, 9)), 0);
        // A run of readings over two resets adds up to what was drawn.
        let readings = [(10, 100), (15, 105), (0, 107), (3, 110), (1, 1), (4, 4)];
        let mut prev = None;
        let mut total = 0;
        for r in readings {
            total += delta(prev, r);
            prev = Some(r);
        }
        assert_eq!(total, 5 + 2 + 3 + 1 + 3);
    }

    #[test]
    fn days_get_energy_cost_by_local_hour_and_running_time() {
        let tz = TimeZone::fixed(jiff::tz::offset(1));
        // 2026-12-01 00:00 +01:00
        let day0 = Date::constant(2026, 12, 1)
            .to_zoned_datetime(tz.clone())
            .unwrap();
        let d0 = ms(&day0);
        let h = 3_600_000;
        let tariff = Tariff::TimeOfUse {
            default_price_per_kwh: 0.4,
            periods: vec![TariffPeriod {
                start_hour: 0,
                end_hour: 6,
                price_per_kwh: 0.1,
            }],
        };
        // 1000 Wh in hour 1 (cheap), 500 Wh in hour 12, 250 Wh the next day at 7.
        let totals = [
            (d0 + h, 11_000),
            (d0 + 12 * h, 11_500),
            (d0 + 31 * h, 11_750),
        ];
        let active = [(d0 + h, 3600, 0), (d0 + 12 * h, 1800, 1200)];
        let hist = Hourly {
            base_wh: Some(10_000),
            totals: totals.to_vec(),
            active: active.to_vec(),
        };
        let rows = usage(&tz, Period::Day, d0, d0 + 48 * h, &hist, &tariff);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].period, "2026-12-01");
        assert_eq!(rows[0].energy_wh, 1500);
        assert!((rows[0].cost - (1.0 * 0.1 + 0.5 * 0.4)).abs() < 1e-9);
        assert_eq!((rows[0].active_secs, rows[0].standby_secs), (5400, 1200));
        assert_eq!((rows[1].energy_wh, rows[1].active_secs), (250, 0));
        let months = usage(&tz, Period::Month, d0, d0 + 48 * h, &hist, &tariff);
        assert_eq!(months.len(), 1);
        assert_eq!(
            (months[0].period.as_str(), months[0].energy_wh),
            ("2026-12", 1750)
        );
    }
}
