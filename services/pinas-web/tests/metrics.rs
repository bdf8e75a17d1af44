//! `/metrics`: the system figures in the OpenMetrics text format, under the metric names
//! dashboards already use.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use tower::ServiceExt;

#[tokio::test]
async fn metrics_keep_their_names_in_openmetrics_text() {
    let dir = tempfile::tempdir().unwrap();
    let mode = Mode::Dev {
        state_dir: dir.path().to_path_buf(),
    };
    let ctx: Arc<Context> = Context::open(Config::load_with_env(&mode, |_| None).unwrap()).unwrap();
    let router = pinas_web::WebApp::new(ctx).build();
    let resp = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# HELP pinas_up 1 when the web role is serving.\n"),
        "{text}"
    );
    let value = |sample: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with([' ', '{']))
            .unwrap_or_else(|| panic!("no {sample} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert_eq!(
        value(&format!(
            "pinas_build_info{{version=\"{}\"}}",
            pinas_core::VERSION
        )),
        1.0
    );
    assert_eq!(value("pinas_up"), 1.0);
    assert!(value("pinas_memory_total_bytes") > 0.0);
    assert!(value("pinas_memory_available_bytes") > 0.0);
    assert!(value("pinas_uptime_seconds") > 0.0);
    let cpu = value("pinas_cpu_usage_percent");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    value("pinas_load1");
    // Every Linux host has a loopback interface.
    value("pinas_network_receive_bytes_total{interface=\"lo\"}");
    value("pinas_network_transmit_bytes_total{interface=\"lo\"}");
    assert!(
        text.contains("# TYPE pinas_network_receive_bytes counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE pinas_memory_total_bytes gauge"),
        "{text}"
    );
}
