//! The allowlist and the denylist: entries a user adds by hand, over the blocklists.
//!
//! Not for: matching names ([`crate::domains`]) or the blocklists themselves.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{is_constraint, DnsError};
use crate::lists;
use crate::state::DnsState;
use crate::store::{self, RuleRow};

/// Allow or deny.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Allow,
    Deny,
}

impl RuleKind {
    /// `allow` or `deny`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
        }
    }
}

/// An entry to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleInput {
    /// `allow` or `deny`.
    pub kind: RuleKind,
    /// `ads.example.com` (that name) or `*.example.com` (it and all subdomains).
    pub pattern: String,
    #[serde(default)]
    pub comment: String,
}

/// Filter for the list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct RuleFilter {
    pub kind: Option<RuleKind>,
}

/// The entries of `kind`, or all.
///
/// # Errors
/// [`DnsError::Database`].
pub fn list(st: &DnsState, kind: Option<RuleKind>) -> Result<Vec<RuleRow>, DnsError> {
    Ok(store::rules(&st.db, kind.map(RuleKind::as_str))?)
}

/// Adds an entry; it applies from the next query on. Emits `dns.rules.changed`.
///
/// # Errors
/// 422 `invalid_pattern`; 409 `rule_exists`; [`DnsError::Database`].
pub fn add(st: &DnsState, r: RuleInput) -> Result<RuleRow, DnsError> {
    let (name, how) = lists::parse_pattern(&r.pattern)
        .map_err(|m| DnsError::invalid("invalid_pattern", m).with_field("pattern"))?;
    let pattern = match how {
        crate::domains::Match::Subtree => format!("*.{name}"),
        crate::domains::Match::Exact => name,
    };
    let kind = r.kind.as_str();
    let id = match store::insert_rule(&st.db, kind, &pattern, &r.comment) {
        Err(e) if is_constraint(&e) => {
            return Err(DnsError::conflict(
                "rule_exists",
                format!("{pattern} is already on the {kind} list"),
            )
            .with_field("pattern"))
        }
        r => r?,
    };
    st.reload_rules()?;
    st.events.emit(
        "dns.rules.changed",
        serde_json::json!({ "id": id, "kind": kind, "action": "created" }),
    );
    Ok(RuleRow {
        id,
        kind: kind.into(),
        pattern,
        comment: r.comment,
    })
}

/// Deletes entry `id`. Emits `dns.rules.changed`.
///
/// # Errors
/// 404 `rule_not_found`; [`DnsError::Database`].
pub fn delete(st: &DnsState, id: i64) -> Result<(), DnsError> {
    if !store::delete_rule(&st.db, id)? {
        return Err(DnsError::not_found(
            "rule_not_found",
            format!("no rule {id}"),
        ));
    }
    st.reload_rules()?;
    st.events.emit(
        "dns.rules.changed",
        serde_json::json!({ "id": id, "action": "deleted" }),
    );
    Ok(())
}
