//! The KLAP client against the fake P110 on loopback: both handshake versions, a wrong
//! account, a dropped and an expired session, a plug that goes offline and comes back,
//! and every device fixture (the captured ones when `../shared/data/tapo-p110` is there,
//! generated ones of the same shape otherwise).

use std::time::Duration;

use pinas_power::fake::{FakeOptions, FakePlug};
use pinas_power::fixtures;
use pinas_power::klap::{http_client, Credentials, KlapVersion, PlugClient, PlugError};

const EMAIL: &str = "someone@example.com";
const PASSWORD: &str = "Secret-Pass 1";

fn creds(password: &str) -> Credentials {
    Credentials {
        email: EMAIL.into(),
        password: password.into(),
    }
}

async fn plug(version: KlapVersion) -> FakePlug {
    let fixture = fixtures::generated().remove(1);
    let mut o = FakeOptions::new(fixture, EMAIL, PASSWORD);
    o.version = Some(version);
    FakePlug::start(o).await.unwrap()
}

fn client(p: &FakePlug, password: &str) -> PlugClient {
    PlugClient::new(
        http_client(Duration::from_millis(500)),
        &p.address(),
        creds(password),
    )
}

#[tokio::test]
async fn klap_v1_and_v2_handshakes_and_encrypted_requests() {
    for version in [KlapVersion::V1, KlapVersion::V2] {
        let p = plug(version).await;
        p.set_power_w(42.5);
        let c = client(&p, PASSWORD);
        let usage = c.get_energy_usage().await.unwrap();
        assert_eq!(usage["current_power"], 42_500, "{version:?}: mW");
        assert_eq!(c.version().await, Some(version));
        let info = c.get_device_info().await.unwrap();
        assert_eq!(info["model"], "P110");
        assert_eq!(c.get_current_power().await.unwrap()["current_power"], 43);
        assert!(c.get_device_usage().await.unwrap()["time_usage"]["past7"].is_number());
        // One session carries every request, each with the next sequence number.
        assert_eq!((p.handshakes(), c.handshakes(), p.requests()), (1, 1, 4));
        c.set_on(false).await.unwrap();
        assert!(!p.is_on());
        assert_eq!(c.get_energy_usage().await.unwrap()["current_power"], 0);
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_and_sends_no_request() {
    let p = plug(KlapVersion::V2).await;
    let c = client(&p, "wrong");
    let e = c.get_device_info().await.unwrap_err();
    assert!(matches!(e, PlugError::Credentials), "{e:?}");
    assert_eq!(e.code(), "plug_credentials_rejected");
    assert!(e.to_string().contains("e-mail address and password"), "{e}");
    assert_eq!(p.requests(), 0);
    // An e-mail address differing only in case is another account.
    let c = PlugClient::new(
        http_client(Duration::from_millis(500)),
        &p.address(),
        Credentials {
            email: EMAIL.to_uppercase(),
            password: PASSWORD.into(),
        },
    );
    assert!(matches!(
        c.get_device_info().await,
        Err(PlugError::Credentials)
    ));
}

#[tokio::test]
async fn a_dropped_session_gets_403_and_the_client_handshakes_again() {
    let p = plug(KlapVersion::V2).await;
    let c = client(&p, PASSWORD);
    c.get_device_info().await.unwrap();
    p.drop_sessions();
    let info = c.get_device_info().await.unwrap();
    assert_eq!(info["model"], "P110");
    assert_eq!(p.handshakes(), 2);
    assert_eq!(p.requests(), 2, "the refused request is not answered");
}

#[tokio::test]
async fn an_expiring_session_is_renewed_before_the_plug_refuses_it() {
    let fixture = fixtures::generated().remove(2);
    let mut o = FakeOptions::new(fixture, EMAIL, PASSWORD);
    o.session_timeout = Duration::from_secs(2);
    let p = FakePlug::start(o).await.unwrap();
    let c = client(&p, PASSWORD);
    c.get_device_info().await.unwrap();
    // The client renews at 3/4 of the announced 2 s.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    c.get_device_info().await.unwrap();
    assert_eq!(p.handshakes(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.get_device_info().await.unwrap();
    assert_eq!(p.handshakes(), 2, "the new session is still valid");
}

#[tokio::test]
async fn an_offline_plug_times_out_and_answers_again_when_back() {
    let p = plug(KlapVersion::V2).await;
    let c = client(&p, PASSWORD);
    c.get_device_info().await.unwrap();
    p.set_online(false).await.unwrap();
    let t = std::time::Instant::now();
    let e = c.get_device_info().await.unwrap_err();
    assert!(matches!(e, PlugError::Unreachable(_)), "{e:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "bounded by the timeout"
    );
    let e = c.get_device_info().await.unwrap_err();
    assert!(matches!(e, PlugError::Unreachable(_)), "{e:?}");
    p.set_online(true).await.unwrap();
    assert_eq!(c.get_device_info().await.unwrap()["model"], "P110");
}

#[tokio::test]
async fn every_fixture_is_served_and_parses() {
    let (all, captured) = fixtures::available();
    eprintln!(
        "fixtures: {} {} ({})",
        all.len(),
        if captured { "captured" } else { "generated" },
        fixtures::captured_dir().display()
    );
    assert!(all.len() >= 4);
    for f in all {
        let name = f.name.clone();
        let version = f.klap_version();
        let has_current_power = f.result("get_current_power").is_some();
        let p = FakePlug::start(FakeOptions::new(f, EMAIL, PASSWORD))
            .await
            .unwrap();
        p.set_power_w(7.0);
        let c = client(&p, PASSWORD);
        let reading = pinas_power::sampler::read(&c).await;
        let reading = reading.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reading.power_w, 7.0, "{name}");
        let (today, month) = p.counters();
        assert!(
            today - reading.today_wh <= 1 && month - reading.month_wh <= 1,
            "{name}"
        );
        assert_eq!(c.version().await, Some(version), "{name}");
        let info = pinas_power::sampler::describe(&c).await.unwrap();
        assert_eq!(info.model, "P110", "{name}");
        assert!(!info.firmware.is_empty(), "{name}");
        assert_eq!(
            c.get_current_power().await.is_ok(),
            has_current_power,
            "{name}"
        );
    }
}
