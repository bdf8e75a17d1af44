//! On the device each role runs in its own process, most without access to `pinas.db`;
//! the web role relays their events to browsers and records them in the event log
//! (`GET /api/events`), as it does its own.

use std::sync::Arc;
use std::time::Duration;

use pinas_core::config::{Config, Mode};
use pinas_core::{Context, EventBus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_role_events_are_recorded_in_the_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let mode = Mode::Dev {
        state_dir: dir.path().to_path_buf(),
    };
    let mut config = Config::load_with_env(&mode, |_| None).unwrap();
    // As on the device: roles in processes of their own, reached through their sockets.
    config.dev = false;
    let ctx: Arc<Context> = Context::open(config).unwrap();
    ctx.db.set_setting("setup_done", "true").unwrap();

    // The DNS role's process: its own bus, no database.
    let role_bus = EventBus::new(None);
    let sock = ctx.paths.role_socket("dns");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (b, s) = (role_bus.clone(), sock.clone());
    tokio::spawn(async move {
        pinas_core::role::serve_socket(&s, axum::Router::new(), b, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    });
    for _ in 0..100 {
        if tokio::net::UnixStream::connect(&sock).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let _router = pinas_web::WebApp::new(ctx.clone()).build();
    let mut found = false;
    for i in 0..100 {
        role_bus.emit("dns.blocking.changed", serde_json::json!({ "n": i }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ctx
            .events
            .recent(100)
            .unwrap()
            .iter()
            .any(|e| e.kind == "dns.blocking.changed")
        {
            found = true;
            break;
        }
    }
    let _ = stop_tx.send(());
    assert!(
        found,
        "an event of the DNS role's process never reached the log"
    );
}
