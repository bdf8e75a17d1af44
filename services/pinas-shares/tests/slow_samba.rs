//! A slow Samba program never holds the database: while `smbpasswd` runs for one
//! request, other requests read and write. And when `smbpasswd` refuses, the account is
//! undone everywhere.
//!
//! A stand-in `smbpasswd` that takes two seconds is put first on `PATH` (this file is its
//! own test process, so no other test sees it). Needs root and smbd, like every test
//! that lets PiNAS manage Samba accounts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pinas_core::auth::{Account, CurrentUser, Role};
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use pinas_shares::{NewUser, Shares, SharesError};
use pinas_testkit::{require, require_root, require_tools, Skip};
use tower::ServiceExt;

/// How long the stand-in smbpasswd takes.
const SLOW: Duration = Duration::from_secs(2);
/// What "answers at once" means here, with room for a loaded machine.
const FAST: Duration = Duration::from_millis(700);

fn fake_smbpasswd(dir: &Path) {
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\nfor last; do :; done\ntouch \"{marks}/started-$last\"\nsleep {secs}\ncase \"$last\" in fail*) echo \"refused by the test\" >&2; exit 1;; esac\nexit 0\n",
        marks = dir.display(),
        secs = SLOW.as_secs()
    );
    let p = dir.join("smbpasswd");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn new_user(name: &str) -> NewUser {
    serde_json::from_value(serde_json::json!({"name": name, "password": "password1"})).unwrap()
}

fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smbpasswd_runs_without_holding_the_database() {
    require!(require_root("PiNAS manages Samba accounts only as root"));
    require!(require_tools(&["smbd"]));
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_smbpasswd(&bin);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Before any other thread of this test process starts.
    std::env::set_var("PATH", path);

    let ctx: Arc<Context> = Context::open(
        Config::load_with_env(
            &Mode::Dev {
                state_dir: d.path().join("state"),
            },
            |_| None,
        )
        .unwrap(),
    )
    .unwrap();
    let shares = Shares::new(ctx.clone()).unwrap();
    let tools = pinas_shares::samba::SambaTools::new(pinas_shares::render::SambaLayout::new(&ctx));
    require!(tools
        .usable
        .clone()
        .map_err(|why| Skip::new(format!("Samba accounts are not managed here: {why}"))));
    assert_eq!(
        pinas_shares::samba::find_program("smbpasswd").unwrap(),
        bin.join("smbpasswd")
    );

    // 1. While smbpasswd runs for alice, the API reads and the database takes writes.
    let done = Arc::new(AtomicBool::new(false));
    let creating = {
        let (shares, done) = (shares.clone(), done.clone());
        std::thread::spawn(move || {
            let r = shares.create_user(new_user("alice"));
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    wait_for(&bin.join("started-alice"));
    let router = shares.router();
    let admin = CurrentUser(Account {
        name: "admin".into(),
        role: Role::Admin,
    });
    let t = Instant::now();
    let resp = router
        .clone()
        .oneshot(
            Request::get("/api/shares")
                .extension(admin.clone())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let listed = shares.list_groups().unwrap();
    ctx.db.set_setting("written_meanwhile", "yes").unwrap();
    let took = t.elapsed();
    assert!(
        !done.load(Ordering::SeqCst),
        "smbpasswd finished before the reads: the test proved nothing"
    );
    assert!(
        took < FAST,
        "reads and a write waited {took:?} for smbpasswd"
    );
    assert!(listed.is_empty());
    let alice = creating.join().unwrap().unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(shares.get_user("alice").unwrap().role, Role::User);

    // 2. smbpasswd refuses: the account is gone from the database and the passwd file.
    let e = shares.create_user(new_user("failbob")).unwrap_err();
    assert!(
        matches!(e, SharesError::Samba(ref m) if m.contains("refused")),
        "{e}"
    );
    assert!(matches!(
        shares.get_user("failbob"),
        Err(SharesError::UserNotFound(_))
    ));
    let passwd = std::fs::read_to_string(ctx.paths.samba_dir.join("passwd")).unwrap();
    assert!(
        passwd.contains("alice:") && !passwd.contains("failbob"),
        "{passwd}"
    );
}
