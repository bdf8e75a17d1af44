//! Serving a role's control API on its Unix socket.
//!
//! Each role of [`crate::roles::ROLES`] with its own process and a socket (`pinas dns`)
//! serves HTTP on `<run_dir>/<role>.sock` (mode 0600: root only). The web role authenticates the browser
//! and proxies `/api/<role>/...` to `/...` on that socket. Every role socket also serves
//! `GET /events`: the role's events as newline-delimited JSON ([`crate::Event`] per line),
//! which the web role merges into `/api/ws`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::net::UnixListener;

use crate::EventBus;

/// Binds `path` (replacing a stale socket), restricts it to the owner, and serves
/// `router` plus `GET /events` until `shutdown` completes.
///
/// # Errors
/// I/O errors from binding the socket or serving.
pub async fn serve_socket(
    path: &Path,
    router: Router,
    events: EventBus,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let app = router.merge(events_router(events));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /events`: newline-delimited JSON events from now on.
pub fn events_router(events: EventBus) -> Router {
    Router::new().route(
        "/events",
        get(move || {
            let rx = events.subscribe();
            async move {
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(ev) => {
                                let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                                line.push(b'\n');
                                return Some((Ok::<_, std::io::Error>(line), rx));
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return None,
                        }
                    }
                });
                Response::builder()
                    .header("content-type", "application/x-ndjson")
                    .body(Body::from_stream(stream))
                    .expect("valid response")
            }
        }),
    )
}
