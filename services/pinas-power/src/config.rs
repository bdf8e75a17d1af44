//! The power role's settings: the `[power]` section of `config.toml` gives the defaults;
//! once an admin saves settings through the API they are kept in the role's database and
//! win from then on. Every change applies at once (the pollers take the new interval at
//! their next sample, the next rollup the new retention).
//!
//! ```toml
//! [power]
//! interval_ms = 10000          # between two samples of a plug (1000 at least)
//! timeout_ms = 3000            # one request to a plug
//! raw_retention_hours = 24     # every sample
//! minute_retention_days = 30   # 1-minute means
//! hour_retention_days = 0      # 1-hour means; 0 keeps them
//! nas_threshold_w = 20.0       # at or above this the NAS is working (active)
//! nas_standby_w = 1.0          # from this up to the threshold: standby; below: off
//! currency = "EUR"
//! [power.tariff]
//! kind = "flat"                # or "time_of_use" with periods
//! price_per_kwh = 0.30
//! ```

use serde::{Deserialize, Serialize};

use crate::error::PowerError;

/// Shortest sampling interval, ms.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// Longest sampling interval, ms (one hour).
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// A price per kWh, in the settings' currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tariff {
    /// One price at every hour.
    Flat { price_per_kwh: f64 },
    /// A price per period of the day (local time); hours no period covers cost
    /// `default_price_per_kwh`.
    TimeOfUse {
        default_price_per_kwh: f64,
        periods: Vec<TariffPeriod>,
    },
}

/// A part of the day with its own price: from `start_hour` (0..=23) up to `end_hour`
/// (1..=24, exclusive); a start after the end wraps past midnight (22 to 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TariffPeriod {
    pub start_hour: u8,
    pub end_hour: u8,
    pub price_per_kwh: f64,
}

impl Tariff {
    /// The price of a kWh drawn in the local hour `hour` (0..=23).
    pub fn price_at(&self, hour: u8) -> f64 {
        match self {
            Tariff::Flat { price_per_kwh } => *price_per_kwh,
            Tariff::TimeOfUse {
                default_price_per_kwh,
                periods,
            } => periods
                .iter()
                .find(|p| {
                    if p.start_hour < p.end_hour {
                        (p.start_hour..p.end_hour).contains(&hour)
                    } else {
                        hour >= p.start_hour || hour < p.end_hour
                    }
                })
                .map_or(*default_price_per_kwh, |p| p.price_per_kwh),
        }
    }
}

/// The settings, as `GET /api/power/settings` shows them and `PUT` takes them (every
/// field required on `PUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = PowerSettings)]
pub struct Settings {
    /// Between two samples of a plug, ms (1000 to 3600000; default 10000).
    pub interval_ms: u64,
    /// One request to a plug, ms (200 to 30000, and below the interval; default 3000).
    pub timeout_ms: u64,
    /// How long every sample is kept, hours (1 to 8760; default 24).
    pub raw_retention_hours: u32,
    /// How long 1-minute means are kept, days (1 to 3650; default 30).
    pub minute_retention_days: u32,
    /// How long 1-hour means are kept, days; 0 keeps them (default 0).
    pub hour_retention_days: u32,
    /// Power at or above which the NAS counts as working (active), W (default 20).
    pub nas_threshold_w: f64,
    /// Power from which, up to the threshold, the NAS counts as in standby (asleep,
    /// disks spun down); below it, off. W, at most the threshold (default 1).
    pub nas_standby_w: f64,
    /// The currency costs are in, e.g. `EUR` (1 to 8 characters; shown, not converted).
    pub currency: String,
    pub tariff: Tariff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval_ms: 10_000,
            timeout_ms: 3_000,
            raw_retention_hours: 24,
            minute_retention_days: 30,
            hour_retention_days: 0,
            nas_threshold_w: 20.0,
            nas_standby_w: 1.0,
            currency: "EUR".into(),
            tariff: Tariff::Flat {
                price_per_kwh: 0.30,
            },
        }
    }
}

fn price_ok(p: f64) -> bool {
    p.is_finite() && (0.0..=100.0).contains(&p)
}

impl Settings {
    /// The settings if every value is usable.
    ///
    /// # Errors
    /// 422 naming the first bad field.
    pub fn checked(self) -> Result<Settings, PowerError> {
        let bad = |field, msg: String| Err(PowerError::invalid("invalid_setting", field, msg));
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return bad(
                "interval_ms",
                format!(
                    "interval_ms {} is outside {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}",
                    self.interval_ms
                ),
            );
        }
        if !(200..=30_000).contains(&self.timeout_ms) || self.timeout_ms > self.interval_ms {
            return bad(
                "timeout_ms",
                format!(
                    "timeout_ms {} must be 200 to 30000 and shorter than interval_ms",
                    self.timeout_ms
                ),
            );
        }
        if !(1..=8760).contains(&self.raw_retention_hours) {
            return bad(
                "raw_retention_hours",
                format!(
                    "raw_retention_hours {} is outside 1 to 8760",
                    self.raw_retention_hours
                ),
            );
        }
        if !(1..=3650).contains(&self.minute_retention_days) {
            return bad(
                "minute_retention_days",
                format!(
                    "minute_retention_days {} is outside 1 to 3650",
                    self.minute_retention_days
                ),
            );
        }
        if !(self.nas_threshold_w.is_finite() && (0.0..=10_000.0).contains(&self.nas_threshold_w)) {
            return bad(
                "nas_threshold_w",
                format!(
                    "nas_threshold_w {} is outside 0 to 10000",
                    self.nas_threshold_w
                ),
            );
        }
        if !(self.nas_standby_w.is_finite()
            && (0.0..=self.nas_threshold_w).contains(&self.nas_standby_w))
        {
            return bad(
                "nas_standby_w",
                format!(
                    "nas_standby_w {} must be 0 to nas_threshold_w ({})",
                    self.nas_standby_w, self.nas_threshold_w
                ),
            );
        }
        let c = self.currency.trim();
        if c.is_empty() || c.chars().count() > 8 {
            return bad(
                "currency",
                format!("currency {:?} must be 1 to 8 characters", self.currency),
            );
        }
        match &self.tariff {
            Tariff::Flat { price_per_kwh } if !price_ok(*price_per_kwh) => {
                return bad(
                    "tariff",
                    format!("price_per_kwh {price_per_kwh} is outside 0 to 100"),
                );
            }
            Tariff::TimeOfUse {
                default_price_per_kwh,
                periods,
            } => {
                if !price_ok(*default_price_per_kwh) {
                    return bad(
                        "tariff",
                        format!(
                            "default_price_per_kwh {default_price_per_kwh} is outside 0 to 100"
                        ),
                    );
                }
                if periods.len() > 24 {
                    return bad("tariff", "at most 24 periods".to_string());
                }
                for p in periods {
                    if p.start_hour > 23
                        || !(1..=24).contains(&p.end_hour)
                        || p.start_hour == p.end_hour
                        || !price_ok(p.price_per_kwh)
                    {
                        return bad("tariff", format!("period {}-{} at {}: hours must be 0..23 to 1..24 and differ, price 0 to 100", p.start_hour, p.end_hour, p.price_per_kwh));
                    }
                }
            }
            Tariff::Flat { .. } => {}
        }
        Ok(Settings {
            currency: c.to_string(),
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_use_periods_wrap_past_midnight() {
        let t = Tariff::TimeOfUse {
            default_price_per_kwh: 0.3,
            periods: vec![TariffPeriod {
                start_hour: 22,
                end_hour: 6,
                price_per_kwh: 0.1,
            }],
        };
        assert_eq!(t.price_at(23), 0.1);
        assert_eq!(t.price_at(0), 0.1);
        assert_eq!(t.price_at(5), 0.1);
        assert_eq!(t.price_at(6), 0.3);
        assert_eq!(t.price_at(21), 0.3);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let s = Settings {
            interval_ms: 500,
            ..Settings::default()
        };
        let e = s.checked().unwrap_err();
        assert!(
            matches!(
                e,
                PowerError::Invalid {
                    field: Some("interval_ms"),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("500"));
        let s = Settings {
            interval_ms: 1_000,
            timeout_ms: 900,
            ..Settings::default()
        };
        assert!(s.checked().is_ok(), "1 s sampling with a 0.9 s timeout");
    }
}
