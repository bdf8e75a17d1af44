//! Device answers for the fake plug ([`crate::fake`]): those captured from real P110s,
//! or generated ones of the same shape where the captures are not at hand.
//!
//! A fixture is one JSON object per device: each key a method (`get_device_info`,
//! `get_energy_usage`, `discovery_result`, ...) and its value the device's `result`.
//! The captured ones come from python-kasa's test fixtures (`tests/fixtures/smart/`) and
//! live outside the repository, in `$PINAS_TEST_DATA/tapo-p110/` (by default
//! `../shared/data/tapo-p110/` beside it); [`available`] falls back to [`generated`]
//! when that folder is absent, so tests run everywhere.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::klap::KlapVersion;

/// One device's answers, by method.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The file name without `.json` (e.g. `P110EU_1.0_1.2.3`), or `generated-...`.
    pub name: String,
    pub responses: Map<String, Value>,
}

impl Fixture {
    /// The KLAP version the device speaks: `lv` 2 in its discovery answer's
    /// `mgt_encrypt_schm` is v2, anything else v1 (python-kasa's `DeviceConnectionParameters`).
    pub fn klap_version(&self) -> KlapVersion {
        let lv = self
            .responses
            .get("discovery_result")
            .and_then(|d| d.get("result").or(Some(d)))
            .and_then(|r| r.get("mgt_encrypt_schm"))
            .and_then(|s| s.get("lv"))
            .and_then(Value::as_i64);
        if lv == Some(2) {
            KlapVersion::V2
        } else {
            KlapVersion::V1
        }
    }

    /// The answer to `method`, if the device knows it.
    pub fn result(&self, method: &str) -> Option<&Value> {
        self.responses.get(method)
    }
}

/// Where the captured fixtures are: `$PINAS_TEST_DATA/tapo-p110`, else
/// `<repository>/../shared/data/tapo-p110`.
pub fn captured_dir() -> PathBuf {
    match std::env::var_os("PINAS_TEST_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("tapo-p110"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tapo-p110"),
    }
}

/// Every `*.json` in `dir`, sorted by name.
///
/// # Errors
/// The file that cannot be read or is not a JSON object, named.
pub fn load_dir(dir: &Path) -> Result<Vec<Fixture>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let path = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let responses = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(format!("{}: not a JSON object", path.display())),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        out.push(Fixture { name, responses });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The captured fixtures when [`captured_dir`] exists (`true`), else [`generated`]
/// (`false`).
///
/// # Panics
/// When the captured folder exists but a file in it cannot be read.
pub fn available() -> (Vec<Fixture>, bool) {
    let dir = captured_dir();
    if dir.is_dir() {
        (load_dir(&dir).unwrap_or_else(|e| panic!("{e}")), true)
    } else {
        (generated(), false)
    }
}

/// Four devices in the captures' shape: an old firmware without `get_current_power` that
/// speaks KLAP v1, and three newer ones (v2) from three regions.
pub fn generated() -> Vec<Fixture> {
    [
        ("EU", "1.0.7 Build 210629 Rel.174901", None, false),
        ("EU", "1.2.3 Build 230425 Rel.142542", Some(2), true),
        ("UK", "1.3.0 Build 230905 Rel.152200", Some(2), true),
        ("AU", "1.3.1 Build 240621 Rel.162048", Some(2), true),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (region, fw, lv, current_power))| generated_one(i, region, fw, lv, current_power))
    .collect()
}

fn generated_one(
    i: usize,
    region: &str,
    fw: &str,
    lv: Option<i64>,
    current_power: bool,
) -> Fixture {
    let mac = format!("48-22-54-00-00-{i:02X}");
    let mut schm = json!({"encrypt_type": if lv.is_some() { "KLAP" } else { "AES" }, "http_port": 80, "is_support_https": false});
    if let Some(lv) = lv {
        schm["lv"] = json!(lv);
    }
    // base64 of "Plug <i>", as the plug encodes its nickname.
    let nickname = ["UGx1ZyAw", "UGx1ZyAx", "UGx1ZyAy", "UGx1ZyAz"][i % 4];
    let mut r = Map::new();
    r.insert(
        "discovery_result".into(),
        json!({"error_code": 0, "result": {
            "device_id": format!("{i:032X}"), "device_model": format!("P110({region})"),
            "device_type": "SMART.TAPOPLUG", "factory_default": false, "ip": "127.0.0.1",
            "mac": mac, "mgt_encrypt_schm": schm, "obd_src": "tplink", "owner": "0".repeat(32)}}),
    );
    r.insert(
        "get_device_info".into(),
        json!({"avatar": "plug", "device_id": format!("{i:040X}"), "device_on": true,
            "fw_ver": fw, "hw_ver": "1.0", "ip": "127.0.0.1", "mac": mac, "model": "P110",
            "nickname": nickname,
            "on_time": 3600, "overheated": false, "region": "Europe/Berlin", "rssi": -50,
            "signal_level": 3, "ssid": "SG9tZQ==", "type": "SMART.TAPOPLUG"}),
    );
    let mut usage = json!({"current_power": 0, "local_time": "2024-01-19 22:33:18",
        "month_energy": 430, "month_runtime": 11571, "today_energy": 46, "today_runtime": 1264});
    if current_power {
        usage["electricity_charge"] = json!([0, 0, 0]);
        r.insert("get_current_power".into(), json!({"current_power": 0}));
    } else {
        usage["past24h"] = json!(vec![0; 24]);
    }
    r.insert("get_energy_usage".into(), usage);
    r.insert(
        "get_device_usage".into(),
        json!({"power_usage": {"past30": 1010, "past7": 368, "today": 46},
            "saved_power": {"past30": 26144, "past7": 9536, "today": 1218},
            "time_usage": {"past30": 27154, "past7": 9904, "today": 1264}}),
    );
    Fixture {
        name: format!(
            "generated-P110{region}_{}",
            fw.split(' ').next().unwrap_or(fw)
        ),
        responses: r,
    }
}
