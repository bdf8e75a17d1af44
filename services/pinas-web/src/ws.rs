//! `GET /api/ws`: the event stream for browsers (session cookie auth).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;

use crate::state::AppState;

/// Upgrades to a WebSocket that sends every event as a JSON text message
/// `{"type":...,"ts":...,"data":{...}}`.
pub async fn handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| stream(socket, state))
}

async fn stream(mut socket: WebSocket, state: AppState) {
    let mut rx = state.ctx.events.subscribe();
    // A first snapshot so meters fill at once.
    let snap = state
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let first = pinas_core::Event::new(
        "system.stats.update",
        serde_json::to_value(snap).unwrap_or_default(),
    );
    if send(&mut socket, &first).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => if send(&mut socket, &ev).await.is_err() { return },
                Err(RecvError::Lagged(n)) => tracing::debug!(skipped = n, "websocket client lagging"),
                Err(RecvError::Closed) => return,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, ev: &pinas_core::Event) -> Result<(), axum::Error> {
    let text = serde_json::to_string(ev).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}
