//! How much the NAS runs: per day, week or month, how long it was up, how often it
//! started, and its longest run, computed from the state history ([`crate::store`]).
//!
//! "Up" means `online`, `going_offline` or `coming_online` ([`crate::nas::NasState::is_up`]); a
//! start is a change from a state that is not up to one that is. Periods are in UTC:
//! days from midnight, weeks from Monday, calendar months.

use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::nas::NasState;
use crate::store::StateRow;

const DAY_MS: i64 = 86_400_000;

/// The length of one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CompanionPeriod)]
pub enum Period {
    Day,
    Week,
    Month,
}

/// One period's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageBucket {
    /// Start (inclusive) and end (exclusive) of the period, Unix ms; the current period
    /// ends at its natural end but is counted up to now.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Seconds the NAS was up in the period.
    pub up_secs: i64,
    /// Times it started in the period.
    pub starts: u32,
    /// Its longest stretch up within the period, seconds.
    pub longest_up_secs: i64,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month) of a day count (Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// The start of the period containing `t_ms`, and the start of the one after it.
pub fn period_bounds(period: Period, t_ms: i64) -> (i64, i64) {
    let day = t_ms.div_euclid(DAY_MS);
    match period {
        Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
        Period::Week => {
            // 1970-01-01 was a Thursday: Monday-based weekday is (day + 3) mod 7.
            let monday = day - (day + 3).rem_euclid(7);
            (monday * DAY_MS, (monday + 7) * DAY_MS)
        }
        Period::Month => {
            let (y, m) = civil_from_days(day);
            let start = days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (start * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
        }
    }
}

/// The usage of the `count` periods ending with the one containing `now_ms`, oldest
/// first. `history` is the state history from before the first period on, oldest first
/// (its first row may predate the first period: the state in force then).
pub fn usage(history: &[StateRow], period: Period, count: u32, now_ms: i64) -> Vec<UsageBucket> {
    let mut starts = Vec::with_capacity(count as usize);
    let mut t = now_ms;
    for _ in 0..count.max(1) {
        let (s, e) = period_bounds(period, t);
        starts.push((s, e));
        t = s - 1;
    }
    starts.reverse();
    // Stretches up: [from, to).
    let mut runs: Vec<(i64, i64, bool)> = Vec::new(); // (from, to, began_here)
    let mut up_since: Option<(i64, bool)> = None;
    let mut prev_up = false;
    for (i, r) in history.iter().enumerate() {
        let up = r.state.is_up();
        if up && !prev_up {
            // The first row may be the state in force before the range: not a start seen.
            up_since = Some((
                r.at_ms,
                i > 0 || history.len() == 1 || r.at_ms >= starts[0].0,
            ));
        } else if !up && prev_up {
            if let Some((from, began)) = up_since.take() {
                runs.push((from, r.at_ms, began));
            }
        }
        prev_up = up;
    }
    if let Some((from, began)) = up_since {
        runs.push((from, now_ms, began));
    }
    starts
        .into_iter()
        .map(|(s, e)| {
            let end = e.min(now_ms);
            let mut b = UsageBucket {
                start_ms: s,
                end_ms: e,
                up_secs: 0,
                starts: 0,
                longest_up_secs: 0,
            };
            for &(from, to, began) in &runs {
                let (a, z) = (from.max(s), to.min(end));
                if z > a {
                    b.up_secs += (z - a) / 1000;
                    b.longest_up_secs = b.longest_up_secs.max((z - a) / 1000);
                }
                if began && from >= s && from < e {
                    b.starts += 1;
                }
            }
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: NasState, at_ms: i64) -> StateRow {
        StateRow {
            state,
            reason: String::new(),
            at_ms,
        }
    }

    #[test]
    fn periods_are_utc_days_monday_weeks_and_calendar_months() {
        // 2026-12-03 13:00 UTC is a Thursday.
        let t = days_from_civil(2026, 12, 3) * DAY_MS + 13 * 3_600_000;
        assert_eq!(
            period_bounds(Period::Day, t).0,
            days_from_civil(2026, 12, 3) * DAY_MS
        );
        assert_eq!(
            period_bounds(Period::Week, t).0,
            days_from_civil(2026, 11, 30) * DAY_MS
        );
        assert_eq!(
            period_bounds(Period::Month, t),
            (
                days_from_civil(2026, 12, 1) * DAY_MS,
                days_from_civil(2027, 1, 1) * DAY_MS
            )
        );
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2));
    }

    #[test]
    fn up_time_starts_and_longest_run_per_day() {
        let d0 = days_from_civil(2026, 12, 1) * DAY_MS;
        let h = 3_600_000;
        let history = vec![
            row(NasState::Offline, d0 - 10 * h),
            // Up 08:00 to 10:00 on day 0, and 22:00 on day 0 to 02:00 on day 1.
            row(NasState::Waking, d0 + 7 * h + 59 * 60_000),
            row(NasState::Online, d0 + 8 * h),
            row(NasState::GoingOffline, d0 + 10 * h - 60_000),
            row(NasState::Offline, d0 + 10 * h),
            row(NasState::ComingOnline, d0 + 22 * h),
            row(NasState::Online, d0 + 22 * h + 60_000),
            row(NasState::Unreachable, d0 + DAY_MS + 2 * h),
        ];
        let now = d0 + 2 * DAY_MS + 12 * h;
        let u = usage(&history, Period::Day, 3, now);
        assert_eq!(u.len(), 3);
        assert_eq!(u[0].start_ms, d0);
        assert_eq!(
            (u[0].up_secs, u[0].starts, u[0].longest_up_secs),
            (4 * 3600, 2, 2 * 3600)
        );
        assert_eq!(
            (u[1].up_secs, u[1].starts, u[1].longest_up_secs),
            (2 * 3600, 0, 2 * 3600)
        );
        assert_eq!((u[2].up_secs, u[2].starts), (0, 0));
        // Still up now: counted up to now only.
        let u = usage(&history[..7], Period::Day, 1, d0 + DAY_MS + h);
        assert_eq!(u[0].up_secs, 3600);
        let w = usage(&history, Period::Week, 1, now);
        assert_eq!((w[0].up_secs, w[0].starts), (6 * 3600, 2));
    }
}
