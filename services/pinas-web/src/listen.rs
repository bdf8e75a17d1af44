//! Serving the app: plain HTTP, and HTTPS when a certificate is configured.
//!
//! With TLS, the plain-HTTP listener redirects to HTTPS (308), except
//! `/api/system/health`, which answers on both so probes need no certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tower::ServiceExt;

/// Whether the request came over TLS (sets the cookie's `Secure` flag).
#[derive(Clone, Copy, Debug)]
pub struct Tls(pub bool);

/// Where to listen.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// HTTPS address, certificate chain (PEM) and private key (PEM).
    pub https: Option<(SocketAddr, PathBuf, PathBuf)>,
}

pub(crate) fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("cannot open {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("{} is not a PEM certificate", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("cannot open {}", key.display()))?,
    ))
    .with_context(|| format!("{} is not a PEM key", key.display()))?
    .with_context(|| format!("no private key in {}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

async fn redirect_to_https(https_port: u16, req: Request, next: Next) -> Response {
    if req.uri().path() == "/api/system/health" {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            // Strip a port, keeping IPv6 literals whole.
            match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => h[..i].to_string(),
                _ => h.to_string(),
            }
        })
        .unwrap_or_else(|| "localhost".into());
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match format!("https://{host}{port}{pq}").parse::<Uri>() {
        Ok(uri) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, uri.to_string())],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Serves `app` on the configured listeners until `shutdown` resolves.
///
/// # Errors
/// When an address cannot be bound or the certificate cannot be loaded.
pub async fn serve(
    app: Router,
    listen: ListenConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let http = TcpListener::bind(listen.http)
        .await
        .with_context(|| format!("cannot listen on {}", listen.http))?;
    tracing::info!(address = %listen.http, "HTTP listening");
    let Some((addr, cert, key)) = listen.https else {
        axum::serve(
            http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await?;
        return Ok(());
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&cert, &key)?));
    let https = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %addr, "HTTPS listening");
    let port = addr.port();
    let plain = app
        .clone()
        .layer(axum::middleware::from_fn(move |req, next| {
            redirect_to_https(port, req, next)
        }));
    let http_task = axum::serve(
        http,
        plain.into_make_service_with_connect_info::<SocketAddr>(),
    );
    let tls_app = app.layer(Extension(Tls(true)));
    let https_task = async move {
        loop {
            let (tcp, peer) = match https.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let app = tls_app.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                        .await
                else {
                    return;
                };
                let svc = app.map_request(move |mut r: Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(ConnectInfo(peer));
                    r
                });
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
            });
        }
    };
    tokio::select! {
        r = http_task => r?,
        _ = https_task => {},
        _ = shutdown => {},
    }
    Ok(())
}
