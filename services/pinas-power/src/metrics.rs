//! The power role's Prometheus metrics (`GET /api/power/metrics`), encoded by
//! prometheus-client in the OpenMetrics text format (<https://openmetrics.io>):
//!
//! - `pinas_power_watts{plug="<name>"}`: the last reading (absent while the plug does
//!   not answer);
//! - `pinas_energy_wh_total{plug="<name>"}`: PiNAS's running total (never goes backwards
//!   across the plug's counter resets);
//! - `pinas_power_plug_up{plug="<name>"}`: 1 when the last try answered.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::PlugView;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The metrics of `plugs` as OpenMetrics text.
///
/// # Errors
/// When encoding fails (it does not with these types).
pub fn render(plugs: &[PlugView]) -> Result<String, std::fmt::Error> {
    let mut r = Registry::default();
    let watts = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let energy = Family::<Labels, Counter>::default();
    let up = Family::<Labels, Gauge>::default();
    for p in plugs {
        let l = vec![("plug", p.plug.name.clone())];
        if let Some(w) = p.status.power_w {
            watts.get_or_create(&l).set(w);
        }
        if let Some(t) = p.status.total_wh {
            energy.get_or_create(&l).inc_by(t.max(0) as u64);
        }
        up.get_or_create(&l)
            .set(i64::from(p.status.online == Some(true)));
    }
    // Help texts without a final period: the encoder adds one. Counters are named
    // without `_total`: the exposition adds it.
    r.register("pinas_power_watts", "Power a plug draws now, W", watts);
    r.register(
        "pinas_energy_wh",
        "Energy through a plug since it was added, Wh",
        energy,
    );
    r.register(
        "pinas_power_plug_up",
        "1 when the plug answered its last reading",
        up,
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r)?;
    Ok(out)
}
