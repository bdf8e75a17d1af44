//! `/api/<role>/...` → `/...` on the role's Unix socket, after the web role has
//! authenticated the browser. Changes (any method but GET/HEAD) need an admin.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hyper_util::rt::TokioIo;
use pinas_core::auth::CurrentUser;
use pinas_core::Error;
use tokio::io::AsyncBufReadExt;
use tokio::net::UnixStream;

use crate::auth::ClientIp;
use crate::state::AppState;

/// Forwards the request to the role named by the second path segment.
pub async fn handler(
    State(state): State<AppState>,
    user: Option<Extension<CurrentUser>>,
    ClientIp(client): ClientIp,
    req: Request,
) -> Result<Response, Error> {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/api/").unwrap_or("");
    let (role, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(Extension(user)) = user else {
        // Only the companion's token paths come here without a session.
        if !is_companion_token_path(req.method(), &path) {
            return Err(Error::unauthorized());
        }
        return forward(&state, role, tail, req, Caller::Token(client)).await;
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        user.require_admin()?;
    }
    forward(&state, role, tail, req, Caller::User(&user)).await
}

/// True for `POST /api/companion/<path>` with one of
/// [`pinas_core::roles::COMPANION_TOKEN_PATHS`]: the NAS's handshake, authenticated by
/// the companion with the pairing token instead of a session.
pub fn is_companion_token_path(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path
            .strip_prefix("/api/companion/")
            .is_some_and(|p| pinas_core::roles::COMPANION_TOKEN_PATHS.contains(&p))
}

/// `/api/storage/remote/<rest>` → `/remote/<rest>` on the companion's socket: the remote
/// share with local fallback lives in the companion role, under the storage API's paths.
/// A session is needed (the route is behind it); changes need an admin.
pub async fn storage_remote(
    State(state): State<AppState>,
    Extension(user): Extension<CurrentUser>,
    req: Request,
) -> Result<Response, Error> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        user.require_admin()?;
    }
    let tail = req
        .uri()
        .path()
        .strip_prefix("/api/storage/")
        .unwrap_or("remote")
        .to_string();
    forward(&state, "companion", &tail, req, Caller::User(&user)).await
}

/// `POST /api/nas-going-offline`, `/api/nas-coming-online`, `/api/wake-nas`: the paths of
/// the original companion design ([`pinas_core::roles::COMPANION_ALIASES`]), forwarded
/// to the companion's token paths unchanged, so a NAS that already calls them works.
pub async fn companion_alias(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    req: Request,
) -> Result<Response, Error> {
    let path = req.uri().path();
    let tail = pinas_core::roles::COMPANION_ALIASES
        .iter()
        .find(|(alias, _)| *alias == path)
        .map(|(_, tail)| *tail)
        .ok_or_else(|| Error::not_found("not_found", "no such API endpoint"))?;
    forward(&state, "companion", tail, req, Caller::Token(client)).await
}

/// `GET /admin/api.php`: the Pi-hole v5 API path that dashboards and Home Assistant's
/// Pi-hole integration (API version 5, location `admin`) call. Like Pi-hole v5, the
/// aggregate summary (`summaryRaw`, `summary`, `status`, `versions`) needs no login; it
/// holds counts only, never names or clients. `enable` and `disable` change blocking only
/// with the Pi-hole API token in `auth=`, which the DNS role checks: the query string is
/// passed through unchanged, and no user headers are sent.
pub async fn pihole_v5(State(state): State<AppState>, req: Request) -> Result<Response, Error> {
    forward(&state, "dns", "pihole/api.php", req, Caller::Anonymous).await
}

/// Who a forwarded request comes from, as the role is told.
enum Caller<'a> {
    /// A signed-in person: `x-pinas-user` and `x-pinas-role`.
    User(&'a CurrentUser),
    /// A caller the role authenticates itself by a token: its address in
    /// `x-pinas-client`, for the role's rate limits.
    Token(std::net::IpAddr),
    /// Nobody in particular (the Pi-hole summary).
    Anonymous,
}

async fn forward(
    state: &AppState,
    role: &str,
    tail: &str,
    req: Request,
    caller: Caller<'_>,
) -> Result<Response, Error> {
    let sock = state.ctx.paths.role_socket(role);
    let stream = UnixStream::connect(&sock).await.map_err(|e| {
        Error::unavailable(
            "role_unavailable",
            format!(
                "the {role} service is not running ({}: {e})",
                sock.display()
            ),
        )
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::unavailable("role_unavailable", format!("{role}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "role connection closed");
        }
    });
    let (mut parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = format!("/{tail}{query}")
        .parse::<Uri>()
        .map_err(|e| Error::bad_request("invalid_path", e.to_string()))?;
    parts.headers.remove(axum::http::header::COOKIE);
    parts.headers.remove("x-pinas-user");
    parts.headers.remove("x-pinas-role");
    parts.headers.remove("x-pinas-client");
    parts
        .headers
        .insert("host", "localhost".parse().expect("valid"));
    if let Caller::Token(ip) = caller {
        parts.headers.insert(
            "x-pinas-client",
            crate::limit::client_network(ip)
                .to_string()
                .parse()
                .expect("an address is a valid header"),
        );
    }
    if let Caller::User(user) = caller {
        parts.headers.insert(
            "x-pinas-user",
            user.0
                .name
                .parse()
                .map_err(|_| Error::internal("user name header"))?,
        );
        parts
            .headers
            .insert("x-pinas-role", user.0.role.as_str().parse().expect("ascii"));
    }
    let resp = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| Error::unavailable("role_unavailable", format!("{role}: {e}")))?;
    Ok(resp.map(Body::new).into_response())
}

/// Relays a role's `/events` stream into this process's event bus and records the events
/// in the event log, reconnecting every few seconds while the role is down. The roles'
/// own processes run without access to `pinas.db` (`pinas dns` as its own user), so the
/// web role keeps the one log of the box.
pub async fn relay_events(state: AppState, role: &'static str) {
    let sock = state.ctx.paths.role_socket(role);
    loop {
        if let Ok(stream) = UnixStream::connect(&sock).await {
            if let Err(e) = relay_once(&state, stream).await {
                tracing::debug!(role, error = %e, "event relay ended");
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

async fn relay_once(state: &AppState, mut stream: UnixStream) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(b"GET /events HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut lines = tokio::io::BufReader::new(stream).lines();
    // Skip the status line and headers.
    while let Some(l) = lines.next_line().await? {
        if l.is_empty() {
            break;
        }
    }
    while let Some(l) = lines.next_line().await? {
        if let Ok(ev) = serde_json::from_str::<pinas_core::Event>(&l) {
            state.ctx.events.publish(ev);
        }
    }
    Ok(())
}
