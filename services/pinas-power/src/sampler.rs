//! Reading a plug: one sample (power and energy counters) and the device's description.
//! The polling loop calls these for every plug.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::klap::{PlugClient, PlugError};

/// One reading of a plug.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reading {
    /// Power drawn now, watts (the plug reports milliwatts).
    pub power_w: f64,
    /// The plug's energy counter since local midnight, Wh.
    pub today_wh: i64,
    /// The plug's energy counter since the first of the month, Wh.
    pub month_wh: i64,
}

/// What a plug says it is.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceInfo {
    /// e.g. `P110`.
    pub model: String,
    /// e.g. `1.2.3 Build 230425 Rel.142542`.
    pub firmware: String,
    /// e.g. `48-22-54-00-00-00`.
    pub mac: String,
    /// The name given in the Tapo app (decoded from the plug's base64).
    pub nickname: String,
    /// Whether the relay is on.
    pub on: bool,
}

fn field<'a>(v: &'a Value, method: &str, key: &str) -> Result<&'a Value, PlugError> {
    v.get(key)
        .ok_or_else(|| PlugError::Protocol(format!("the answer to {method} has no {key}")))
}

fn int(v: &Value, method: &str, key: &str) -> Result<i64, PlugError> {
    field(v, method, key)?
        .as_f64()
        .map(|f| f as i64)
        .ok_or_else(|| {
            PlugError::Protocol(format!("{key} in the answer to {method} is not a number"))
        })
}

/// Reads power and energy counters with one `get_energy_usage` (its `current_power`
/// is in milliwatts on every P110 firmware, finer than `get_current_power`'s watts,
/// which firmware before 1.2 lacks).
///
/// # Errors
/// The client's [`PlugError`], or [`PlugError::Protocol`] when a field is missing.
pub async fn read(c: &PlugClient) -> Result<Reading, PlugError> {
    let m = "get_energy_usage";
    let u = c.get_energy_usage().await?;
    Ok(Reading {
        power_w: int(&u, m, "current_power")? as f64 / 1000.0,
        today_wh: int(&u, m, "today_energy")?,
        month_wh: int(&u, m, "month_energy")?,
    })
}

/// Reads the device's description with `get_device_info`.
///
/// # Errors
/// The client's [`PlugError`], or [`PlugError::Protocol`] when a field is missing.
pub async fn describe(c: &PlugClient) -> Result<DeviceInfo, PlugError> {
    let m = "get_device_info";
    let i = c.get_device_info().await?;
    let text = |k: &str| -> Result<String, PlugError> {
        Ok(field(&i, m, k)?.as_str().unwrap_or_default().to_string())
    };
    let nickname = text("nickname")?;
    let nickname = base64::engine::general_purpose::STANDARD
        .decode(&nickname)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or(nickname);
    Ok(DeviceInfo {
        model: text("model")?,
        firmware: text("fw_ver")?,
        mac: text("mac")?,
        nickname,
        on: field(&i, m, "device_on")?.as_bool().unwrap_or(false),
    })
}
