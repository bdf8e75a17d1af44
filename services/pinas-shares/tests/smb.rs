//! Shares, users and groups against a real smbd and smbclient, and the HTTP API in
//! process. Tests that run smbd need root (smbd switches to each user) and skip
//! otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pinas_core::auth::{Account, CurrentUser, Role};
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use pinas_shares::{NewGroup, NewShare, NewUser, ShareUpdate, Shares, SharesError, UserUpdate};
use pinas_testkit::{require, require_root, require_tools, Skip};
use tower::ServiceExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn context(dir: &Path) -> Arc<Context> {
    // Share users must be able to pass through the state folder (temp folders are 0700).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = Config::defaults(&Mode::Dev {
        state_dir: dir.to_path_buf(),
    });
    cfg.smb.port = free_port();
    Context::open(cfg).unwrap()
}

fn admin() -> CurrentUser {
    CurrentUser(Account {
        name: "admin".into(),
        role: Role::Admin,
    })
}

fn plain(name: &str) -> CurrentUser {
    CurrentUser(Account {
        name: name.into(),
        role: Role::User,
    })
}

/// What a test running smbd and smbclient needs.
fn smb_peers() -> Result<(), Skip> {
    require_root("smbd switches to each share user")?;
    require_tools(&["smbd", "smbclient"])
}

fn new_share(name: &str, path: &Path) -> NewShare {
    serde_json::from_value(serde_json::json!({"name": name, "path": path})).unwrap()
}

fn seed_admin(ctx: &Context) {
    pinas_core::auth::create_account(&ctx.db.conn(), "admin", Role::Admin, "adminpass1").unwrap();
}

/// smbclient against `//127.0.0.1/<share>` on `port`; returns (success, output).
fn smbclient(
    port: u16,
    share: &str,
    user: Option<(&str, &str)>,
    cmd: &str,
    cwd: &Path,
) -> (bool, String) {
    let mut c = Command::new("smbclient");
    c.arg(format!("//127.0.0.1/{share}"))
        .args(["-p", &port.to_string(), "-m", "SMB3", "-c", cmd])
        .current_dir(cwd)
        .stdin(Stdio::null());
    match user {
        Some((u, p)) => c.arg("-U").arg(format!("{u}%{p}")),
        None => c.arg("-N"),
    };
    let out = c.output().expect("smbclient runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn wait_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("smbd did not listen on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smbclient_reads_and_writes_as_a_pinas_user() {
    require!(smb_peers());
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    seed_admin(&ctx);
    let shares = Shares::start(ctx.clone()).await.unwrap();
    let port = ctx.config.smb.port;
    wait_port(port).await;
    assert_eq!(
        shares.services()[0].state,
        pinas_shares::ServiceState::Running
    );

    let s2 = shares.clone();
    let media = ctx.paths.shares_root.join("media");
    let m2 = media.clone();
    let share = tokio::task::spawn_blocking(move || {
        s2.create_user(NewUser {
            name: "alice".into(),
            password: "wonderland1".into(),
            role: Role::User,
            groups: vec![],
        })?;
        s2.create_share(new_share("media", &m2))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(media.is_dir());

    let work = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(work.path().join("up.bin"), &payload).unwrap();
    let (ok, out) = smbclient(
        port,
        "media",
        Some(("alice", "wonderland1")),
        "put up.bin; get up.bin down.bin",
        work.path(),
    );
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read(work.path().join("down.bin")).unwrap(),
        payload
    );
    assert_eq!(
        std::fs::read(media.join("up.bin")).unwrap(),
        payload,
        "file is on the share folder"
    );

    // Wrong password and guests are refused on a non-guest share.
    let (ok, out) = smbclient(
        port,
        "media",
        Some(("alice", "wrongpass1")),
        "ls",
        work.path(),
    );
    assert!(!ok, "{out}");
    let (ok, out) = smbclient(port, "media", None, "ls", work.path());
    assert!(!ok, "guest must be refused: {out}");

    // Read-only: writes refused.
    let s2 = shares.clone();
    let id = share.id;
    tokio::task::spawn_blocking(move || {
        s2.update_share(
            id,
            ShareUpdate {
                read_only: Some(true),
                ..Default::default()
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    let (ok, out) = smbclient(
        port,
        "media",
        Some(("alice", "wonderland1")),
        "put up.bin again.bin",
        work.path(),
    );
    assert!(
        !ok || out.contains("NT_STATUS_ACCESS_DENIED")
            || out.contains("NT_STATUS_MEDIA_WRITE_PROTECTED"),
        "{out}"
    );
    assert!(!media.join("again.bin").exists());

    // Password change reaches Samba.
    let s2 = shares.clone();
    tokio::task::spawn_blocking(move || {
        s2.update_user(
            "alice",
            UserUpdate {
                password: Some("looking-glass2".into()),
                current_password: Some("wonderland1".into()),
                ..Default::default()
            },
            &plain("alice"),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let (ok, out) = smbclient(
        port,
        "media",
        Some(("alice", "looking-glass2")),
        "ls",
        work.path(),
    );
    assert!(ok, "{out}");

    // Deleted share is gone for new connections; the data stays.
    let s2 = shares.clone();
    tokio::task::spawn_blocking(move || s2.delete_share(id))
        .await
        .unwrap()
        .unwrap();
    let (ok, out) = smbclient(
        port,
        "media",
        Some(("alice", "looking-glass2")),
        "ls",
        work.path(),
    );
    assert!(!ok && out.contains("BAD_NETWORK_NAME"), "{out}");
    assert!(media.join("up.bin").exists());

    // smbd restarts when it dies.
    let pid = shares.services()[0].detail.clone();
    let pid: i32 = pid
        .split("pid ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    wait_port(port).await;
    assert_eq!(
        shares.services()[0].state,
        pinas_shares::ServiceState::Running
    );

    shares.shutdown().await;
    assert_eq!(
        shares.services()[0].state,
        pinas_shares::ServiceState::Stopped
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "smbd stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_get_in_and_others_do_not() {
    require!(smb_peers());
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    seed_admin(&ctx);
    let shares = Shares::start(ctx.clone()).await.unwrap();
    let port = ctx.config.smb.port;
    wait_port(port).await;
    let s2 = shares.clone();
    let root = ctx.paths.shares_root.clone();
    tokio::task::spawn_blocking(move || -> Result<(), SharesError> {
        s2.create_user(NewUser {
            name: "alice".into(),
            password: "wonderland1".into(),
            role: Role::User,
            groups: vec![],
        })?;
        s2.create_user(NewUser {
            name: "bob".into(),
            password: "builder123".into(),
            role: Role::User,
            groups: vec![],
        })?;
        s2.create_group(NewGroup {
            name: "family".into(),
            description: "us".into(),
            members: vec!["alice".into()],
        })?;
        let mut ns = new_share("family", &root.join("family"));
        ns.valid_users = vec!["@family".into()];
        s2.create_share(ns)?;
        s2.create_share(new_share("common", &root.join("common")))?;
        let mut open = new_share("public", &root.join("public"));
        open.guest_ok = true;
        s2.create_share(open)?;
        Ok(())
    })
    .await
    .unwrap()
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.txt"), "alice").unwrap();
    let (ok, out) = smbclient(
        port,
        "family",
        Some(("alice", "wonderland1")),
        "put a.txt",
        work.path(),
    );
    assert!(ok, "{out}");
    let (ok, out) = smbclient(
        port,
        "family",
        Some(("bob", "builder123")),
        "ls",
        work.path(),
    );
    assert!(!ok, "bob is not in family: {out}");
    // Written files are group users, so other users may change them.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(ctx.paths.shares_root.join("family/a.txt")).unwrap();
    assert_eq!(m.gid(), 100);
    // One user may change what another wrote (group users, setgid folders, 0664 files).
    let (ok, out) = smbclient(
        port,
        "common",
        Some(("alice", "wonderland1")),
        "mkdir docs; put a.txt docs/a.txt",
        work.path(),
    );
    assert!(ok, "{out}");
    std::fs::write(work.path().join("a.txt"), "bob was here").unwrap();
    let (ok, out) = smbclient(
        port,
        "common",
        Some(("bob", "builder123")),
        "put a.txt docs/a.txt; put a.txt docs/b.txt",
        work.path(),
    );
    assert!(ok && !out.contains("NT_STATUS"), "{out}");
    let common = ctx.paths.shares_root.join("common/docs");
    assert_eq!(
        std::fs::read_to_string(common.join("a.txt")).unwrap(),
        "bob was here"
    );
    let m = std::fs::metadata(&common).unwrap();
    assert_eq!(
        (m.gid(), m.mode() & 0o7777),
        (100, 0o2775),
        "folders made over SMB stay shared"
    );
    // Guests may use a guest share.
    let (ok, out) = smbclient(port, "public", None, "ls", work.path());
    assert!(ok, "{out}");
    // The user named through a group cannot be deleted while... the group can't.
    let s2 = shares.clone();
    let e = tokio::task::spawn_blocking(move || s2.delete_group("family"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, SharesError::InUse { .. }), "{e}");
    shares.shutdown().await;
}

// ---- HTTP API in process (no root needed) ----

async fn call(
    app: &axum::Router,
    user: &CurrentUser,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .extension(user.clone())
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn api_refuses_bad_input_and_leaves_config_alone() {
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    seed_admin(&ctx);
    let shares = Shares::new(ctx.clone()).unwrap();
    let app = shares.router();
    let a = admin();
    let root: PathBuf = std::fs::canonicalize(&ctx.paths.shares_root).unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();

    let body = serde_json::json!({"name": "media", "path": root.join("media")}).to_string();
    let (st, v) = call(&app, &a, "POST", "/api/shares", &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    assert_eq!(v["path"], root.join("media").display().to_string());
    let conf_before = std::fs::read_to_string(shares.smb_conf_path()).unwrap();
    assert!(conf_before.contains("[media]"));
    let db_before = shares.list_shares().unwrap();

    let cases: Vec<(String, StatusCode, &str)> = vec![
        (serde_json::json!({"name": "up", "path": format!("{}/../../etc", root.display())}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root"),
        (serde_json::json!({"name": "link", "path": root.join("escape")}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root"),
        (serde_json::json!({"name": "link2", "path": root.join("escape/sub")}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root"),
        (serde_json::json!({"name": "etc", "path": "/etc"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root"),
        (serde_json::json!({"name": "rel", "path": "media"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root"),
        (serde_json::json!({"name": "MEDIA", "path": root.join("other")}).to_string(), StatusCode::CONFLICT, "share_name_taken"),
        (serde_json::json!({"name": "bad]name", "path": root.join("x")}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_share_name"),
        (serde_json::json!({"name": "global", "path": root.join("x")}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_share_name"),
        (serde_json::json!({"name": "x", "path": root.join("x"), "valid_users": ["nobody"]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "unknown_valid_user"),
        (serde_json::json!({"name": "x", "path": root.join("x"), "nfs": true, "nfs_clients": ["a b"]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_nfs_client"),
    ];
    for (body, want, want_code) in cases {
        let (st, v) = call(&app, &a, "POST", "/api/shares", &body).await;
        assert_eq!((st, code(&v)), (want, want_code), "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // A folder users cannot pass through.
    let locked = root.join("locked");
    std::fs::create_dir_all(locked.join("in")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/shares",
        &serde_json::json!({"name": "locked", "path": locked.join("in")}).to_string(),
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "share_path_not_reachable"),
        "{v}"
    );
    // Truncated JSON body: a 4xx before anything runs.
    let (st, _) = call(&app, &a, "POST", "/api/shares", r#"{"name": "x", "pa"#).await;
    assert!(st.is_client_error(), "{st}");
    // Not an admin.
    let (st, v) = call(
        &app,
        &plain("bob"),
        "POST",
        "/api/shares",
        &serde_json::json!({"name": "b", "path": root.join("b")}).to_string(),
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "admin_required"));
    // Rename onto a taken name, move outside.
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/shares",
        &serde_json::json!({"name": "docs", "path": root.join("docs")}).to_string(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let docs = v["id"].as_i64().unwrap();
    let (st, v) = call(
        &app,
        &a,
        "PUT",
        &format!("/api/shares/{docs}"),
        r#"{"name":"Media"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "share_name_taken"));
    let (st, v) = call(
        &app,
        &a,
        "PUT",
        &format!("/api/shares/{docs}"),
        &serde_json::json!({"path": root.join("escape")}).to_string(),
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "share_path_outside_root")
    );
    let (st, _) = call(&app, &a, "DELETE", &format!("/api/shares/{docs}"), "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    assert_eq!(
        std::fs::read_to_string(shares.smb_conf_path()).unwrap(),
        conf_before,
        "smb.conf unchanged"
    );
    assert_eq!(
        shares.list_shares().unwrap(),
        db_before,
        "database unchanged"
    );
    assert!(
        !root.join("x").exists() && !outside.join("sub").exists(),
        "no folder made for refused shares"
    );

    let (st, v) = call(&app, &a, "GET", &format!("/api/shares/{id}"), "").await;
    assert_eq!((st, v["name"].as_str()), (StatusCode::OK, Some("media")));
    let (st, v) = call(&app, &a, "GET", "/api/shares/999", "").await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "share_not_found"));
}

#[tokio::test]
async fn rejected_config_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    let shares = Shares::new(ctx.clone()).unwrap();
    require!(require_tools(&["testparm"]));
    let tools = pinas_shares::samba::SambaTools::new(pinas_shares::render::SambaLayout::new(&ctx));
    let e = tools
        .check_config("[global]\n   bogus option = 1\n")
        .unwrap_err();
    assert!(
        matches!(e, SharesError::ConfigRejected(ref m) if m.contains("bogus")),
        "{e}"
    );
    let e = tools
        .check_config("[global]\n[x]\n   read only = maybe\n")
        .unwrap_err();
    assert!(matches!(e, SharesError::ConfigRejected(_)), "{e}");
    tools
        .check_config(&std::fs::read_to_string(shares.smb_conf_path()).unwrap())
        .unwrap();
}

/// What testparm reads for `param` of section `share` in `conf`.
fn testparm_value(conf: &Path, share: &str, param: &str) -> String {
    let out = Command::new("testparm")
        .arg("-s")
        .arg(format!("--section-name={share}"))
        .arg(format!("--parameter-name={param}"))
        .arg(conf)
        .output()
        .expect("testparm runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn trailing_backslash_does_not_continue_the_line() {
    require!(require_tools(&["testparm"]));
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    let shares = Shares::new(ctx.clone()).unwrap();
    // `$` shares are rendered `browseable = no` right after the path or the comment: a
    // line continued by `\` would swallow it and leave Samba's default, yes.
    let folder = ctx.paths.shares_root.join("odd \\");
    let s = shares.create_share(new_share("odd$", &folder)).unwrap();
    assert!(s.path.ends_with('\\'), "{}", s.path);
    let mut described = new_share("films$", &ctx.paths.shares_root.join("films"));
    described.description = "Films \\ ".into();
    shares.create_share(described).unwrap();
    let conf = shares.smb_conf_path();
    assert_eq!(testparm_value(conf, "odd$", "browseable"), "No");
    assert_eq!(testparm_value(conf, "films$", "browseable"), "No");
    assert_eq!(testparm_value(conf, "films$", "comment"), "Films");
    // The path still names the folder that was made.
    let path = testparm_value(conf, "odd$", "path");
    assert_eq!(
        std::fs::canonicalize(&path).unwrap(),
        std::fs::canonicalize(&folder).unwrap(),
        "{path}"
    );
}

#[tokio::test]
async fn users_and_groups_api() {
    let d = tempfile::tempdir().unwrap();
    let ctx = context(d.path());
    seed_admin(&ctx);
    let shares = Shares::new(ctx.clone()).unwrap();
    let app = shares.router();
    let a = admin();
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/groups",
        r#"{"name":"family","description":"Home"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/users",
        r#"{"name":"alice","password":"wonderland1","groups":["family"]}"#,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"name":"alice","role":"user","groups":["family"]})
    );
    assert!(!v.to_string().contains("wonderland"));
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/users",
        r#"{"name":"alice","password":"wonderland1"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "user_exists"));
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/users",
        r#"{"name":"Bad Name","password":"wonderland1"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_username")
    );
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/users",
        r#"{"name":"carol","password":"short"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "password_too_short")
    );
    let (st, v) = call(
        &app,
        &a,
        "POST",
        "/api/users",
        r#"{"name":"carol","password":"longenough","groups":["nope"]}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_group")
    );
    assert!(
        shares.get_user("carol").is_err(),
        "failed create leaves no account"
    );

    // Account files for nss_wrapper.
    let passwd = std::fs::read_to_string(ctx.paths.samba_dir.join("passwd")).unwrap();
    assert!(passwd.contains("alice:x:"), "{passwd}");
    assert!(
        passwd.contains("admin:x:"),
        "setup's admin gets a uid too: {passwd}"
    );
    let group = std::fs::read_to_string(ctx.paths.samba_dir.join("group")).unwrap();
    assert!(group.contains("family:x:2001:alice"), "{group}");

    // A user may change their own password, giving the current one, but not their role.
    for body in [
        r#"{"password":"newpassword"}"#,
        r#"{"password":"newpassword","current_password":"wrong-one"}"#,
    ] {
        let (st, v) = call(&app, &plain("alice"), "PUT", "/api/users/alice", body).await;
        assert_eq!(
            (st, code(&v)),
            (StatusCode::FORBIDDEN, "current_password_invalid"),
            "{body}"
        );
    }
    let (st, _) = call(
        &app,
        &plain("alice"),
        "PUT",
        "/api/users/alice",
        r#"{"password":"newpassword","current_password":"wonderland1"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // An admin sets another user's password without knowing it...
    let (st, v) = call(
        &app,
        &a,
        "PUT",
        "/api/users/alice",
        r#"{"password":"adminchosen"}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // ...but not their own.
    let (st, v) = call(
        &app,
        &a,
        "PUT",
        "/api/users/admin",
        r#"{"password":"newadminpass"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::FORBIDDEN, "current_password_invalid")
    );
    let (st, v) = call(
        &app,
        &plain("alice"),
        "PUT",
        "/api/users/alice",
        r#"{"role":"admin"}"#,
    )
    .await;
    assert_eq!((st, code(&v)), (StatusCode::FORBIDDEN, "admin_required"));
    let (st, _) = call(&app, &plain("alice"), "GET", "/api/users", "").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // The last admin stays.
    let (st, v) = call(&app, &a, "PUT", "/api/users/admin", r#"{"role":"user"}"#).await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "last_admin"));
    let (st, v) = call(&app, &a, "DELETE", "/api/users/admin", "").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "cannot_delete_self"));
    // In use by a share.
    let root = std::fs::canonicalize(&ctx.paths.shares_root).unwrap();
    let body = serde_json::json!({"name": "a", "path": root.join("a"), "valid_users": ["alice", "@family"]}).to_string();
    let (st, v) = call(&app, &a, "POST", "/api/shares", &body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = call(&app, &a, "DELETE", "/api/users/alice", "").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "in_use_by_share"));
    let (st, v) = call(&app, &a, "DELETE", "/api/groups/family", "").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "in_use_by_share"));
    let id = v["id"].as_i64();
    assert!(id.is_none());
    let sid = shares.list_shares().unwrap()[0].id;
    let (st, _) = call(&app, &a, "DELETE", &format!("/api/shares/{sid}"), "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = call(&app, &a, "PUT", "/api/groups/family", r#"{"members":[]}"#).await;
    assert_eq!(
        (st, v["members"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (st, _) = call(&app, &a, "DELETE", "/api/users/alice", "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = call(&app, &a, "DELETE", "/api/groups/family", "").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = call(&app, &a, "GET", "/api/users", "").await;
    assert_eq!(
        (st, v),
        (
            StatusCode::OK,
            serde_json::json!([{"name":"admin","role":"admin","groups":[]}])
        )
    );
    let passwd = std::fs::read_to_string(ctx.paths.samba_dir.join("passwd")).unwrap();
    assert!(!passwd.contains("alice"));
}
