//! Local records and conditional forwarding: checking what a user enters, storing it,
//! and rebuilding the local zone so the next query sees it.
//!
//! Not for: answering queries ([`crate::handler`] reads the zone), or the switch record
//! (its name is refused here; [`crate::state::DnsState::set_switch`] moves it).

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{is_constraint, DnsError};
use crate::state::DnsState;
use crate::store::{self, ForwardRow, LocalRecordRow, NewRecord};
use crate::upstream::UpstreamAddr;
use crate::zone::{self, LocalType};

/// A record to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecordInput {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: LocalType,
    pub value: String,
    /// Defaults to `dns.local_ttl_secs`.
    pub ttl_secs: Option<u32>,
    #[serde(default)]
    pub comment: String,
}

/// A forwarding rule to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ForwardInput {
    /// A domain, or an IPv4 network (/8, /16, /24) for its reverse zone.
    pub domain: String,
    /// The router's address, e.g. `192.168.1.1`.
    pub server: String,
    #[serde(default)]
    pub comment: String,
}

/// Checks `r`; returns owner name, stored value and TTL.
fn check_record(st: &DnsState, r: &RecordInput) -> Result<(String, String, u32), DnsError> {
    let (owner, _) = zone::validate(&r.name, r.rtype, &r.value)
        .map_err(|(field, msg)| DnsError::invalid("invalid_record", msg).with_field(field))?;
    if owner == st.switch_name {
        return Err(DnsError::conflict(
            "name_is_switch",
            format!("{owner} is the switch record; change it with /api/dns/switch"),
        )
        .with_field("name"));
    }
    let value = match r.rtype {
        LocalType::A | LocalType::Aaaa => r.value.trim().to_string(),
        _ => crate::domains::normalize(r.value.trim()).unwrap_or_default(),
    };
    Ok((owner, value, r.ttl_secs.unwrap_or(st.cfg.local_ttl_secs)))
}

fn one(st: &DnsState, id: i64) -> Result<LocalRecordRow, DnsError> {
    store::records(&st.db, Some(id))?
        .pop()
        .ok_or_else(|| DnsError::not_found("record_not_found", format!("no local record {id}")))
}

/// Every local record, by name.
///
/// # Errors
/// [`DnsError::Database`].
pub fn list(st: &DnsState) -> Result<Vec<LocalRecordRow>, DnsError> {
    Ok(store::records(&st.db, None)?)
}

/// Adds a record; it answers from the next query on. Emits `dns.records.changed`.
///
/// # Errors
/// 422 `invalid_record` naming the field; 409 `name_is_switch`; [`DnsError::Database`].
pub fn create(st: &DnsState, r: &RecordInput) -> Result<LocalRecordRow, DnsError> {
    let (name, value, ttl_secs) = check_record(st, r)?;
    let id = store::insert_record(
        &st.db,
        &NewRecord {
            name: &name,
            rtype: r.rtype,
            value: &value,
            ttl_secs,
            comment: &r.comment,
        },
    )?;
    st.reload_zone()?;
    st.events.emit(
        "dns.records.changed",
        serde_json::json!({ "id": id, "action": "created" }),
    );
    one(st, id)
}

/// Replaces record `id`. Emits `dns.records.changed`.
///
/// # Errors
/// As [`create`], and 404 `record_not_found`.
pub fn replace(st: &DnsState, id: i64, r: &RecordInput) -> Result<LocalRecordRow, DnsError> {
    let (name, value, ttl_secs) = check_record(st, r)?;
    let found = store::update_record(
        &st.db,
        id,
        &NewRecord {
            name: &name,
            rtype: r.rtype,
            value: &value,
            ttl_secs,
            comment: &r.comment,
        },
    )?;
    if !found {
        return Err(DnsError::not_found(
            "record_not_found",
            format!("no local record {id}"),
        ));
    }
    st.reload_zone()?;
    st.events.emit(
        "dns.records.changed",
        serde_json::json!({ "id": id, "action": "updated" }),
    );
    one(st, id)
}

/// Deletes record `id`. Emits `dns.records.changed`.
///
/// # Errors
/// 404 `record_not_found`; [`DnsError::Database`].
pub fn delete(st: &DnsState, id: i64) -> Result<(), DnsError> {
    if !store::delete_record(&st.db, id)? {
        return Err(DnsError::not_found(
            "record_not_found",
            format!("no local record {id}"),
        ));
    }
    st.reload_zone()?;
    st.events.emit(
        "dns.records.changed",
        serde_json::json!({ "id": id, "action": "deleted" }),
    );
    Ok(())
}

/// Every forwarding rule, by domain.
///
/// # Errors
/// [`DnsError::Database`].
pub fn forwards(st: &DnsState) -> Result<Vec<ForwardRow>, DnsError> {
    Ok(store::forwards(&st.db)?)
}

/// Sends a domain (or an IPv4 network's reverse zone) to another server; returns every
/// rule.
///
/// # Errors
/// 422 `invalid_forward` naming `domain` or `server`; 409 `forward_exists`;
/// [`DnsError::Database`].
pub fn add_forward(st: &Arc<DnsState>, f: &ForwardInput) -> Result<Vec<ForwardRow>, DnsError> {
    let domain = zone::forward_domain(&f.domain)
        .map_err(|m| DnsError::invalid("invalid_forward", m).with_field("domain"))?;
    let server: UpstreamAddr = f
        .server
        .parse()
        .map_err(|m: String| DnsError::invalid("invalid_forward", m).with_field("server"))?;
    match store::insert_forward(&st.db, &domain, &server.to_string(), &f.comment) {
        Err(e) if is_constraint(&e) => {
            return Err(DnsError::conflict(
                "forward_exists",
                format!("{domain} is already forwarded"),
            )
            .with_field("domain"))
        }
        r => r?,
    };
    st.reload_zone()?;
    forwards(st)
}

/// Deletes forwarding rule `id`.
///
/// # Errors
/// 404 `forward_not_found`; [`DnsError::Database`].
pub fn delete_forward(st: &DnsState, id: i64) -> Result<(), DnsError> {
    if !store::delete_forward(&st.db, id)? {
        return Err(DnsError::not_found(
            "forward_not_found",
            format!("no forwarding rule {id}"),
        ));
    }
    st.reload_zone()
}
