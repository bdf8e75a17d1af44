//! The UI's static files, with fallback to `index.html` for client-side routes.

use std::path::Path;

use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get_service, MethodRouter};
use tower_http::services::{ServeDir, ServeFile};

/// Serves `dir` (precompressed `.gz`/`.br` siblings when present); unknown paths get
/// `index.html`. When the UI is not built, a short page says how to build it.
pub fn service(dir: &Path) -> MethodRouter {
    let index = dir.join("index.html");
    if index.exists() {
        get_service(
            ServeDir::new(dir)
                .precompressed_gzip()
                .precompressed_br()
                .fallback(ServeFile::new(index)),
        )
    } else {
        let msg = format!(
            "<!doctype html><title>PiNAS</title><p>The PiNAS API is running. The web UI is not built: \
             no <code>index.html</code> in <code>{}</code>. Build it with <code>npm ci && npm run build</code> in <code>web/</code>.",
            html_escape(&dir.display().to_string())
        );
        axum::routing::get(move || async move { (StatusCode::OK, Html(msg.clone())) })
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
