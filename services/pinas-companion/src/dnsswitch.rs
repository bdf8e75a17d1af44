//! The DNS switch, driven through the DNS role's control socket
//! (`<run_dir>/dns.sock`, `GET`/`POST /switch`; docs/dns.md "The DNS switch"): the
//! companion never touches the DNS role's database.
//!
//! The DNS role answers a `POST /switch` only once the new target is stored and in
//! force, so the next query gets the new address: a successful call is the proof the
//! handshake waits for.

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;

use crate::error::CompanionError;

/// How long one call to the DNS role may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the switch record points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CompanionTarget)]
pub enum Target {
    Nas,
    Companion,
}

/// The switch as the DNS role reports it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SwitchView {
    /// The name that follows the switch, e.g. `nas.home`.
    pub name: String,
    pub target: Target,
    pub reason: String,
    /// Unix milliseconds of the last change (0: never changed).
    pub changed_at_ms: i64,
    /// What the name answers now.
    pub addresses: Vec<String>,
}

/// A client of the DNS role's switch.
#[derive(Debug, Clone)]
pub struct DnsSwitch {
    socket: PathBuf,
}

impl DnsSwitch {
    /// A client of the DNS role listening on `socket` (e.g. `/run/pinas/dns.sock`).
    pub fn new(socket: PathBuf) -> DnsSwitch {
        DnsSwitch { socket }
    }

    /// The switch now.
    ///
    /// # Errors
    /// 503 `dns_unavailable` when the DNS role does not answer or refuses.
    pub async fn get(&self) -> Result<SwitchView, CompanionError> {
        self.call("GET", None).await
    }

    /// Points the switch at `target` with `reason` (at most 500 bytes) and returns it as
    /// now in force.
    ///
    /// # Errors
    /// 503 `dns_unavailable` when the DNS role does not answer or refuses.
    pub async fn set(&self, target: Target, reason: &str) -> Result<SwitchView, CompanionError> {
        let body = serde_json::json!({"target": target, "reason": reason});
        self.call("POST", Some(body.to_string())).await
    }

    /// Points the switch at `target` unless it points there already, so a repeated
    /// handshake changes it once. Returns the switch and whether it changed.
    ///
    /// # Errors
    /// As [`DnsSwitch::set`].
    pub async fn ensure(
        &self,
        target: Target,
        reason: &str,
    ) -> Result<(SwitchView, bool), CompanionError> {
        let now = self.get().await?;
        if now.target == target {
            return Ok((now, false));
        }
        Ok((self.set(target, reason).await?, true))
    }

    async fn call(&self, method: &str, body: Option<String>) -> Result<SwitchView, CompanionError> {
        match tokio::time::timeout(TIMEOUT, self.call_once(method, body)).await {
            Ok(r) => r,
            Err(_) => Err(unavailable(format!(
                "the DNS role did not answer within {} s",
                TIMEOUT.as_secs()
            ))),
        }
    }

    async fn call_once(
        &self,
        method: &str,
        body: Option<String>,
    ) -> Result<SwitchView, CompanionError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            unavailable(format!(
                "the DNS role is not running ({}: {e})",
                self.socket.display()
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(format!("DNS role: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::builder()
            .method(method)
            .uri("/switch")
            .header("host", "localhost")
            .header("content-type", "application/json")
            // The DNS role trusts the caller's role from this header; only processes that
            // can open its root-only socket can send it.
            .header("x-pinas-role", "admin")
            .header("x-pinas-user", "companion")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CompanionError::internal(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unavailable(format!("DNS role: {e}")))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(format!("DNS role: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(unavailable(format!(
                "the DNS role refused the switch ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("the DNS role's answer is not a switch state: {e}")))
    }
}

fn unavailable(message: String) -> CompanionError {
    CompanionError::unavailable("dns_unavailable", message)
}
