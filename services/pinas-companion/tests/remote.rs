//! The remote share with local fallback against a real mount that disappears and comes
//! back. This build machine's kernel has no SMB or NFS client, so the "NAS's share" is a
//! folder on a tmpfs of its own, bind-mounted at the mount point by [`BindMounter`]; the
//! NAS going to sleep is that mount being unmounted and the mounter refusing to mount
//! again until it "wakes". The mounter is the only difference from production (where
//! `SystemMounter` runs `systemd-mount -t cifs|nfs`): the health checks, the failure
//! count and cool-down, the spool link, the status and the move of the fallback files
//! (rsync, verified, then deleted) are the production code. Files are compared with
//! `b2sum` on both sides.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use pinas_companion::remote::{MountSpec, Mounter};
use pinas_companion::{api, Companion, CompanionConfig};
use pinas_core::EventBus;
use pinas_testkit::{require, require_root, require_tools};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Mounts the "NAS's share" (`server`) at the mount point with a bind mount while the
/// NAS is reachable; refuses, as mount.cifs does with a host that does not answer,
/// while it is not.
struct BindMounter {
    server: PathBuf,
    reachable: AtomicBool,
    mounts: AtomicU32,
    last_spec: std::sync::Mutex<Option<MountSpec>>,
}

impl Mounter for BindMounter {
    fn mount(&self, spec: &MountSpec, at: &Path) -> Result<(), String> {
        *self.last_spec.lock().unwrap() = Some(spec.clone());
        if !self.reachable.load(Ordering::SeqCst) {
            return Err("mount error(113): could not connect to the server".into());
        }
        run(&["mount", "--bind", path(&self.server), path(at)])?;
        self.mounts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn unmount(&self, at: &Path) -> Result<(), String> {
        run(&["umount", "-l", path(at)])
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn b2sum(p: &Path) -> String {
    let out = Command::new("b2sum").arg(p).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Unmounts what the test mounted, whatever happens.
struct Unmount(Vec<PathBuf>);
impl Drop for Unmount {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("umount").args(["-l"]).arg(p).output();
        }
    }
}

async fn call(
    router: &axum::Router,
    role: Option<&str>,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(r) = role {
        req = req
            .header("x-pinas-role", r)
            .header("x-pinas-user", "tester");
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_falls_back_while_the_share_is_gone_and_moves_back_verified() {
    require!(require_root("mounting the stand-in share"));
    require!(require_tools(&["mount", "umount", "rsync", "b2sum"]));
    let tmp = tempfile::tempdir().unwrap();
    let server = tmp.path().join("nas");
    std::fs::create_dir_all(&server).unwrap();
    let remote_dir = tmp.path().join("remote");
    // The SMB share `spool`'s folder (what smbd writes into on the device).
    let share_dir = tmp.path().join("shares/spool");
    // The NAS's disk: a file system of its own, so a bind of it is a real mount.
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=64m",
        "nas",
        path(&server),
    ])
    .unwrap();
    let _unmount = Unmount(vec![remote_dir.join("mnt"), server.clone()]);

    let file = CompanionConfig {
        remote_dir: Some(remote_dir.clone()),
        remote_probe_timeout_ms: 2000,
        remote_failures_before_cooldown: 3,
        remote_cooldown_secs: 2,
        inbox_settle_secs: 0,
        spool_share_dir: Some(share_dir.clone()),
        ..CompanionConfig::default()
    };
    let events = EventBus::new(None);
    let mut rx = events.subscribe();
    let c = Companion::open(
        &tmp.path().join("companion"),
        file,
        tmp.path().join("dns.sock"),
        events.clone(),
    )
    .unwrap();
    let mounter = Arc::new(BindMounter {
        server: server.clone(),
        reachable: AtomicBool::new(true),
        mounts: AtomicU32::new(0),
        last_spec: Default::default(),
    });
    c.remote().set_mounter(mounter.clone());
    let router = api::router(c.clone());
    let mnt = remote_dir.join("mnt").display().to_string();
    let fallback = remote_dir.join("fallback").display().to_string();
    let spool = remote_dir.join("spool");

    // Nothing set up: local.
    let (s, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["network_enabled"], false);
    assert_eq!(v["network_available"], false);
    assert_eq!(v["using_fallback"], true);
    assert_eq!(v["mount_point"], mnt);
    assert_eq!(v["fallback_dir"], fallback);
    assert_eq!(v["current_storage"], fallback);
    assert_eq!(v["consecutive_failures"], 0);

    // Set up: the password goes to a 0600 credentials file and nowhere else.
    let secret = "Nas-Pass word 7";
    let (s, v) = call(
        &router,
        Some("admin"),
        Method::PUT,
        "/remote/settings",
        Some(
            json!({"enabled": true, "kind": "smb", "server": "bignas.home", "share": "video",
                    "username": "pi", "password": secret}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(secret), "{v}");
    assert_eq!(v["password_set"], true);
    let creds = remote_dir.join("credentials");
    let mode = std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&creds).unwrap(),
        format!("username=pi\npassword={secret}\n")
    );
    let json_settings = std::fs::read_to_string(remote_dir.join("remote.json")).unwrap();
    assert!(!json_settings.contains(secret));
    let spec = mounter.last_spec.lock().unwrap().clone().unwrap();
    assert_eq!(spec.source, "//bignas.home/video");
    assert!(spec
        .options
        .contains(&format!("credentials={}", creds.display())));
    assert!(!spec.options().contains(secret));
    let (s, v) = call(
        &router,
        Some("admin"),
        Method::GET,
        "/remote/settings",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v.to_string().contains(secret), "{v}");
    assert_eq!(
        (v["server"].as_str(), v["password_set"].as_bool()),
        (Some("bignas.home"), Some(true))
    );

    // Saving checked at once: mounted, healthy, new files go to the NAS.
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(v["network_enabled"], true, "{v}");
    assert_eq!(v["network_available"], true, "{v}");
    assert_eq!(v["using_fallback"], false);
    assert_eq!(v["current_storage"], mnt);
    assert_eq!(v["consecutive_failures"], 0);
    assert_eq!(mounter.mounts.load(Ordering::SeqCst), 1);
    std::fs::write(spool.join("first.bin"), vec![7u8; 100_000]).unwrap();
    assert!(
        server.join("first.bin").is_file(),
        "written through to the NAS"
    );
    assert!(!remote_dir.join("fallback/first.bin").exists());
    // No probe file is left behind.
    assert!(!server.join(".pinas-probe").exists());
    // A file written into the SMB share's folder moves at the next check, verified.
    assert!(share_dir.is_dir(), "the share's folder is made");
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(v["share_dir"], share_dir.display().to_string(), "{v}");
    std::fs::create_dir_all(share_dir.join("cam")).unwrap();
    std::fs::write(share_dir.join("cam/clip1.mp4"), vec![3u8; 70_000]).unwrap();
    let sum = b2sum(&share_dir.join("cam/clip1.mp4"));
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(
        (v["share_files"].as_u64(), v["share_bytes"].as_u64()),
        (Some(1), Some(70_000)),
        "{v}"
    );
    let st = c.check_remote().await.unwrap();
    assert_eq!(st.share_files, 0, "{st:?}");
    assert_eq!(st.last_moved_files, 1);
    assert_eq!(b2sum(&server.join("cam/clip1.mp4")), sum);
    assert!(!share_dir.join("cam/clip1.mp4").exists());

    // The NAS sleeps: its share goes away and it does not answer mounts.
    mounter.reachable.store(false, Ordering::SeqCst);
    run(&["umount", "-l", &mnt]).unwrap();
    let st = c.check_remote().await.unwrap();
    assert_eq!(st.consecutive_failures, 1);
    assert!(st.network_enabled && !st.network_available && st.using_fallback);
    assert_eq!(st.current_storage, fallback);
    assert_eq!(st.cooldown_until_ms, None);
    assert!(
        st.last_error
            .as_deref()
            .unwrap()
            .contains("could not connect"),
        "{st:?}"
    );
    // Each change of place is an event: to the share (at the save), then to the fallback.
    let mut changes = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if e.kind == "companion.remote.changed" {
            changes.push(e.data["using_fallback"].as_bool().unwrap());
        }
    }
    assert_eq!(changes, [false, true]);
    // New files land in the fallback folder.
    let mut sums = Vec::new();
    std::fs::create_dir_all(spool.join("day1")).unwrap();
    for (i, name) in ["a.mp4", "day1/b.mp4", "c with space.txt"]
        .iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..(50_000 * (i + 1)))
            .map(|n| (n * 31 + i) as u8)
            .collect();
        std::fs::write(spool.join(name), &data).unwrap();
        assert!(remote_dir.join("fallback").join(name).is_file(), "{name}");
        assert!(!server.join(name).exists(), "{name}");
        sums.push((
            name.to_string(),
            b2sum(&remote_dir.join("fallback").join(name)),
        ));
    }
    // The SMB share's files wait on the companion meanwhile.
    std::fs::write(share_dir.join("while-asleep.txt"), b"kept here").unwrap();
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(v["fallback_files"], 3, "{v}");
    assert_eq!(v["using_fallback"], true);
    assert_eq!(v["share_files"], 1, "{v}");
    assert!(!server.join("while-asleep.txt").exists());

    // Two more failures: three in a row start the cool-down.
    c.check_remote().await.unwrap();
    let st = c.check_remote().await.unwrap();
    assert_eq!(st.consecutive_failures, 3);
    let until = st.cooldown_until_ms.expect("a cool-down");
    assert!(until > pinas_core::events::now_ms());
    // The NAS wakes, but during the cool-down the spool stays local and nothing is tried.
    mounter.reachable.store(true, Ordering::SeqCst);
    let mounts = mounter.mounts.load(Ordering::SeqCst);
    let st = c.check_remote().await.unwrap();
    assert!(st.using_fallback && !st.network_available);
    assert_eq!(st.consecutive_failures, 3);
    assert_eq!(st.current_storage, fallback);
    assert_eq!(mounter.mounts.load(Ordering::SeqCst), mounts);
    assert_eq!(
        std::fs::read_link(&spool).unwrap(),
        PathBuf::from("fallback")
    );

    // A file still being written while the NAS comes back.
    let mut writing = std::fs::File::create(spool.join("recording.ts")).unwrap();
    std::io::Write::write_all(&mut writing, b"first half").unwrap();

    // After the cool-down: mounted again, and the fallback files move, verified.
    tokio::time::sleep(Duration::from_millis(
        (until - pinas_core::events::now_ms()).max(0) as u64 + 100,
    ))
    .await;
    let st = c.check_remote().await.unwrap();
    assert!(st.network_available && !st.using_fallback, "{st:?}");
    assert_eq!(st.consecutive_failures, 0);
    assert_eq!(st.cooldown_until_ms, None);
    assert_eq!(st.current_storage, mnt);
    // The file still open for writing waits; the others moved.
    assert_eq!(st.fallback_files, 1, "{st:?}");
    assert!(remote_dir.join("fallback/recording.ts").is_file());
    assert!(!server.join("recording.ts").exists());
    assert_eq!(
        st.last_moved_files, 4,
        "three fallback files and the share's one"
    );
    assert!(st.last_move_at_ms.is_some());
    assert_eq!(st.share_files, 0, "{st:?}");
    assert_eq!(
        std::fs::read(server.join("while-asleep.txt")).unwrap(),
        b"kept here"
    );
    for (name, sum) in &sums {
        assert_eq!(&b2sum(&server.join(name)), sum, "{name} on the NAS");
        assert!(!remote_dir.join("fallback").join(name).exists(), "{name}");
    }
    assert!(server.join("first.bin").is_file());
    // Once it is closed, the next check moves it.
    std::io::Write::write_all(&mut writing, b", second half").unwrap();
    drop(writing);
    let st = c.check_remote().await.unwrap();
    assert_eq!(st.fallback_files, 0, "{st:?}");
    assert_eq!(
        std::fs::read(server.join("recording.ts")).unwrap(),
        b"first half, second half"
    );
    assert_eq!(std::fs::read_link(&spool).unwrap(), PathBuf::from("mnt"));

    // Reset: failures and cool-down forgotten, checked at once (admin only).
    mounter.reachable.store(false, Ordering::SeqCst);
    run(&["umount", "-l", &mnt]).unwrap();
    for _ in 0..3 {
        c.check_remote().await.unwrap();
    }
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(v["consecutive_failures"], 3);
    assert!(v["cooldown_until_ms"].is_i64(), "{v}");
    let (s, v) = call(&router, Some("user"), Method::POST, "/remote/reset", None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_required"))
    );
    mounter.reachable.store(true, Ordering::SeqCst);
    let (s, v) = call(&router, Some("admin"), Method::POST, "/remote/reset", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["consecutive_failures"], 0, "{v}");
    assert_eq!(v["cooldown_until_ms"], Value::Null);
    assert_eq!(v["network_available"], true);
    assert_eq!(v["using_fallback"], false);
    assert_eq!(v["current_storage"], mnt);

    // Turned off: unmounted, local again.
    let (s, v) = call(
        &router,
        Some("admin"),
        Method::PUT,
        "/remote/settings",
        Some(
            json!({"enabled": false, "kind": "smb", "server": "bignas.home", "share": "video",
                    "username": "pi"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["password_set"], true, "an absent password is kept");
    let (_, v) = call(&router, Some("user"), Method::GET, "/remote/status", None).await;
    assert_eq!(v["network_enabled"], false);
    assert_eq!(v["using_fallback"], true);
    assert_eq!(v["current_storage"], fallback);
    assert!(!pinas_companion::remote::is_mount_point(
        &remote_dir.join("mnt")
    ));
}

#[tokio::test]
async fn remote_settings_refuse_bad_input_and_non_admins() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Companion::open(
        &tmp.path().join("companion"),
        CompanionConfig {
            remote_dir: Some(tmp.path().join("remote")),
            ..CompanionConfig::default()
        },
        tmp.path().join("dns.sock"),
        EventBus::new(None),
    )
    .unwrap();
    let router = api::router(c);
    let good = json!({"enabled": true, "kind": "nfs", "server": "10.0.0.2", "share": "/srv/video"});
    for (patch, code, field) in [
        (json!({"kind": "ftp"}), "invalid_kind", Some("kind")),
        (
            json!({"server": "big nas"}),
            "invalid_server",
            Some("server"),
        ),
        (
            json!({"share": "srv/video"}),
            "invalid_share",
            Some("share"),
        ),
        (
            json!({"username": "pi"}),
            "invalid_username",
            Some("username"),
        ),
        (
            json!({"password": "a\nb"}),
            "invalid_password",
            Some("password"),
        ),
        (json!({"version": "9"}), "invalid_version", Some("version")),
        (json!({"port": 0}), "invalid_port", Some("port")),
        (json!({"port": 70000}), "invalid_body", None),
        (json!({"mount_options": "exec"}), "invalid_body", None),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (s, v) = call(
            &router,
            Some("admin"),
            Method::PUT,
            "/remote/settings",
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{patch}: {v}");
        assert_eq!(v["error"]["code"], code, "{patch}: {v}");
        assert_eq!(v["error"]["field"].as_str(), field, "{patch}: {v}");
    }
    // Nothing was stored.
    assert!(!tmp.path().join("remote/remote.json").exists());
    // Who may call what.
    for (m, uri, body) in [
        (Method::PUT, "/remote/settings", Some(good.clone())),
        (Method::GET, "/remote/settings", None),
        (Method::POST, "/remote/reset", None),
    ] {
        let (s, v) = call(&router, Some("user"), m.clone(), uri, body.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_required")),
            "{m} {uri}"
        );
        let (s, v) = call(&router, None, m.clone(), uri, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("role_required")),
            "{m} {uri}"
        );
    }
    let (s, _) = call(&router, None, Method::GET, "/remote/status", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The device's layout: the mount point is a bind of an empty root-owned folder of the
/// same file system (the companion's unit makes it), and the share is mounted on it by
/// PID 1. The bind alone is not the share: the check fails, the spool stays local (and
/// no probe file is written into the empty folder); with the share on top it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_empty_bound_mount_point_is_not_taken_for_the_share() {
    require!(require_root("bind mounts"));
    require!(require_tools(&["mount", "umount"]));
    let tmp = tempfile::tempdir().unwrap();
    let remote_dir = tmp.path().join("remote");
    let host = tmp.path().join("remote-mnt");
    let server = tmp.path().join("nas");
    for d in [remote_dir.join("mnt"), host.clone(), server.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mnt = remote_dir.join("mnt");
    run(&["mount", "--bind", path(&host), path(&mnt)]).unwrap();
    let _unmount = Unmount(vec![mnt.clone(), mnt.clone(), server.clone()]);
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=8m",
        "nas",
        path(&server),
    ])
    .unwrap();
    let file = CompanionConfig {
        remote_dir: Some(remote_dir.clone()),
        remote_failures_before_cooldown: 100,
        ..CompanionConfig::default()
    };
    let c = Companion::open(
        &tmp.path().join("companion"),
        file,
        tmp.path().join("dns.sock"),
        EventBus::new(None),
    )
    .unwrap();
    // A mounter that cannot mount (the NAS is away): only the bind is there.
    let mounter = Arc::new(BindMounter {
        server: server.clone(),
        reachable: AtomicBool::new(false),
        mounts: AtomicU32::new(0),
        last_spec: Default::default(),
    });
    c.remote().set_mounter(mounter.clone());
    let r = c
        .remote()
        .save(pinas_companion::remote::RemoteSettingsInput {
            enabled: true,
            kind: "smb".into(),
            server: "10.0.2.2".into(),
            share: "spool".into(),
            username: String::new(),
            password: None,
            version: None,
            port: None,
        });
    r.unwrap();
    // save() detached the "share" (the bind): bind it again as the unit would.
    if !pinas_companion::remote::is_mount_point(&mnt) {
        run(&["mount", "--bind", path(&host), path(&mnt)]).unwrap();
    }
    let st = c.check_remote().await.unwrap();
    assert!(st.using_fallback, "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("could not connect")),
        "{st:?}"
    );
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0);
    // The NAS answers: the share is mounted on the bind, and the check passes.
    mounter.reachable.store(true, Ordering::SeqCst);
    let st = c.check_remote().await.unwrap();
    assert!(!st.using_fallback && st.network_available, "{st:?}");
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0);
}
