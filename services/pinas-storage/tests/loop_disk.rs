//! Storage against a real block device: a 64 MiB loop disk with a real filesystem,
//! seen through udev, mounted, refused, unmounted, re-applied and formatted. Needs root
//! (loop devices, mount(2)) and skips otherwise; starts `systemd-udevd --daemon` when
//! no udev daemon answers. The blkid probe and the rescanning monitor, the paths taken
//! without udev, are checked against the same disks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pinas_core::auth::{Account, CurrentUser, Role};
use pinas_core::config::{Config, Mode};
use pinas_core::Context;
use pinas_storage::format::FormatRequest;
use pinas_storage::{disks, mount, Storage, StorageError};
use pinas_testkit::{require, require_root, require_tools, Skip};
use tower::ServiceExt;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Root and the tools of a loop disk; starts a udev daemon when none answers.
fn ready() -> Result<(), Skip> {
    require_root("loop devices and mount(2)")?;
    require_tools(&["losetup", "mkfs.ext4", "mkfs.vfat", "udevadm", "umount"])?;
    if !disks::udev_alive() {
        let _ = Command::new("/lib/systemd/systemd-udevd")
            .arg("--daemon")
            .status();
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Held by every test that attaches loop devices. The kernel hands a detached loop
/// device's number to the next `losetup -f`, so a disk another test attaches at that
/// moment would look to the hotplug tests like theirs coming back, and the rescanning
/// monitor would never see theirs go.
static LOOP_DEVICES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn loop_devices() -> std::sync::MutexGuard<'static, ()> {
    LOOP_DEVICES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loop disk that is detached (and unmounted) when dropped.
struct LoopDisk {
    dev: String,
    _dir: tempfile::TempDir,
}

impl LoopDisk {
    fn new(mkfs: &[&str]) -> LoopDisk {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let dev = run("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let mut args: Vec<&str> = mkfs[1..].to_vec();
        args.push(&dev);
        run(mkfs[0], &args);
        settle(&dev);
        LoopDisk { dev, _dir: dir }
    }
    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }
}

fn settle(dev: &str) {
    run("udevadm", &["trigger", "--action=change", dev]);
    run("udevadm", &["settle", "--timeout=10"]);
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for l in mounts
            .lines()
            .filter(|l| l.starts_with(&format!("{} ", self.dev)))
        {
            if let Some(mp) = l.split(' ').nth(1) {
                let _ = Command::new("umount").arg("-l").arg(mp).status();
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn context(dir: &Path) -> Arc<Context> {
    Context::open(Config::defaults(&Mode::Dev {
        state_dir: dir.to_path_buf(),
    }))
    .unwrap()
}

fn fs_of(name: &str, dir: &Path) -> Option<disks::Filesystem> {
    disks::list_disks(dir)
        .unwrap()
        .into_iter()
        .find(|d| d.name == name)
        .and_then(|d| d.filesystem)
}

#[test]
fn loop_disk_lifecycle() {
    require!(ready());
    let _serial = loop_devices();
    let state = tempfile::tempdir().unwrap();
    let ctx = context(state.path());
    let label = format!("t{}", std::process::id() % 100000);
    let disk = LoopDisk::new(&["mkfs.ext4", "-q", "-L", &label]);

    let listed = disks::list_disks(&ctx.paths.disks_dir).unwrap();
    let d = listed
        .iter()
        .find(|d| d.name == disk.name())
        .expect("loop disk listed");
    assert_eq!(d.size_bytes, 64 << 20);
    assert_eq!(d.transport, "loop");
    assert!(!d.system);
    let fs = d.filesystem.clone().expect("ext4 seen through udev");
    // A loop disk has no serial number: formatting is confirmed by the filesystem's UUID.
    assert_eq!(d.format_confirm, fs.uuid);
    assert_eq!(
        (fs.fs_type.as_str(), fs.label.as_str()),
        ("ext4", label.as_str())
    );
    assert!(fs.mount_point.is_none());
    // Without udev, the direct probe finds the same signature.
    let probed = disks::probe_blkid(Path::new(&disk.dev)).expect("blkid probes the disk");
    assert_eq!(
        (probed.fs_type, probed.label, probed.uuid),
        (fs.fs_type.clone(), fs.label.clone(), fs.uuid.clone())
    );

    // Mount: under <disks>/<label>, with space figures; twice is the same mount.
    let m = mount::mount_uuid(&ctx, &fs.uuid).unwrap();
    let mp = ctx.paths.disks_dir.join(&label);
    assert_eq!(PathBuf::from(&m.mount_point), mp);
    let now = fs_of(disk.name(), &ctx.paths.disks_dir).unwrap();
    assert_eq!(now.mount_point.as_deref(), Some(mp.to_str().unwrap()));
    assert!(now.free_bytes.unwrap() > 40 << 20 && now.used_bytes.is_some());
    assert_eq!(
        mount::mount_uuid(&ctx, &fs.uuid.to_uppercase())
            .unwrap()
            .mount_point,
        m.mount_point
    );
    std::fs::write(mp.join("kept.txt"), "data").unwrap();

    // Format refuses a mounted device, a wrong confirm, unknown devices, the system disk.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fmt = |device: &str, confirm: &str| FormatRequest {
        device: device.into(),
        fs_type: "ext4".into(),
        label: "x".into(),
        confirm: confirm.into(),
    };
    rt.block_on(async {
        let e = pinas_storage::format::start_format(&ctx, fmt(&disk.dev, &fs.uuid)).unwrap_err();
        assert!(matches!(e, StorageError::DeviceInUse(_)), "{e}");
        let e = pinas_storage::format::start_format(&ctx, fmt(&disk.dev, "/dev/sdz")).unwrap_err();
        assert!(matches!(e, StorageError::ConfirmMismatch { .. }), "{e}");
        // The path alone does not confirm a disk that has a filesystem UUID.
        let e = pinas_storage::format::start_format(&ctx, fmt(&disk.dev, &disk.dev)).unwrap_err();
        assert!(matches!(e, StorageError::ConfirmMismatch { .. }), "{e}");
        let e =
            pinas_storage::format::start_format(&ctx, fmt("/dev/nonexistent", "/dev/nonexistent"))
                .unwrap_err();
        assert!(matches!(e, StorageError::UnknownDevice(_)), "{e}");
        if let Some(sys) = disks::list_disks(&ctx.paths.disks_dir)
            .unwrap()
            .into_iter()
            .find(|d| d.system)
        {
            let e = pinas_storage::format::start_format(&ctx, fmt(&sys.path, &sys.format_confirm))
                .unwrap_err();
            assert!(matches!(e, StorageError::SystemDisk(_)), "{e}");
        }
    });

    // Unmount refused while a share lives there, allowed with force.
    ctx.db
        .conn()
        .execute(
            "INSERT INTO shares (name, path, created_at) VALUES ('media', ?1, 0)",
            [mp.join("media").display().to_string()],
        )
        .unwrap();
    let e = mount::unmount_uuid(&ctx, &fs.uuid, false).unwrap_err();
    assert!(
        matches!(e, StorageError::MountInUse { ref shares, .. } if shares == &["media"]),
        "{e}"
    );
    ctx.db.conn().execute("DELETE FROM shares", []).unwrap();

    // Stored mounts come back: unmount behind PiNAS's back, then re-apply.
    run("umount", &[mp.to_str().unwrap()]);
    assert!(fs_of(disk.name(), &ctx.paths.disks_dir)
        .unwrap()
        .mount_point
        .is_none());
    assert_eq!(mount::reapply(&ctx), 1);
    assert_eq!(
        std::fs::read_to_string(mp.join("kept.txt")).unwrap(),
        "data"
    );

    let u = mount::unmount_uuid(&ctx, &fs.uuid, false).unwrap();
    assert!(!u.mounted);
    assert!(!mp.exists(), "empty mount point removed");
    assert!(
        mount::list_mounts(&ctx).unwrap().is_empty(),
        "unmounted means forgotten"
    );
    assert!(matches!(
        mount::unmount_uuid(&ctx, &fs.uuid, false),
        Err(StorageError::NotMounted(_))
    ));

    // Format to FAT, watch the task to its end, see the new filesystem.
    let mut events = ctx.events.subscribe();
    let req = FormatRequest {
        device: disk.dev.clone(),
        fs_type: "vfat".into(),
        label: "NEWFS".into(),
        confirm: fs.uuid.clone(),
    };
    rt.block_on(async {
        let started = pinas_storage::format::start_format(&ctx, req).unwrap();
        let last = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let ev = events.recv().await.unwrap();
                if ev.kind == "task.progress"
                    && ev.data["task_id"] == started.task_id
                    && ev.data["done"] == true
                {
                    return ev;
                }
            }
        })
        .await
        .expect("format finishes");
        assert_eq!(last.data["error"], serde_json::Value::Null, "{}", last.data);
        assert_eq!(last.data["percent"], 100);
    });
    // No trigger here: the task ends once udev's database shows the new filesystem.
    let fs2 = fs_of(disk.name(), &ctx.paths.disks_dir).unwrap();
    assert_eq!(
        (fs2.fs_type.as_str(), fs2.label.as_str()),
        ("vfat", "NEWFS")
    );
    let kernel_fat = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("vfat");
    match mount::mount_uuid(&ctx, &fs2.uuid) {
        Ok(m2) => {
            // FAT has no owners: the mount gives group users write access.
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&m2.mount_point).unwrap();
            assert_eq!((meta.gid(), meta.mode() & 0o777), (100, 0o775));
            mount::unmount_uuid(&ctx, &fs2.uuid, false).unwrap();
        }
        Err(e) => {
            assert!(
                !kernel_fat,
                "vfat mount failed although the kernel has it: {e}"
            );
            assert!(e.to_string().contains("kernel cannot mount vfat"), "{e}");
            assert!(
                mount::list_mounts(&ctx).unwrap().is_empty(),
                "a failed mount is not stored"
            );
        }
    }
}

fn admin() -> CurrentUser {
    CurrentUser(Account {
        name: "admin".into(),
        role: Role::Admin,
    })
}

async fn call(
    app: &axum::Router,
    user: CurrentUser,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .extension(user)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let st = resp.status();
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        st,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_api() {
    let state = tempfile::tempdir().unwrap();
    let ctx = context(state.path());
    let app = Storage::new(ctx.clone()).router();
    let a = admin();
    let (st, v) = call(&app, a.clone(), "GET", "/api/storage/disks", "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(v.is_array());
    let code = |v: &serde_json::Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    let (st, v) = call(
        &app,
        a.clone(),
        "POST",
        "/api/storage/mount",
        r#"{"uuid":"../../etc"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_uuid")
    );
    let (st, v) = call(
        &app,
        a.clone(),
        "POST",
        "/api/storage/mount",
        r#"{"uuid":"0000dead-beef-0000-0000-000000000000"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::NOT_FOUND, "filesystem_not_found")
    );
    let (st, _) = call(&app, a.clone(), "POST", "/api/storage/mount", r#"{"uuid":"#).await;
    assert!(st.is_client_error());
    let (st, v) = call(
        &app,
        a.clone(),
        "POST",
        "/api/storage/unmount",
        r#"{"uuid":"0000dead"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::NOT_FOUND, "not_mounted")
    );
    let user = CurrentUser(Account {
        name: "bob".into(),
        role: Role::User,
    });
    let (st, v) = call(
        &app,
        user,
        "POST",
        "/api/storage/format",
        r#"{"device":"/dev/x","fs_type":"ext4","label":"","confirm":"/dev/x"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::FORBIDDEN, "admin_required")
    );
    let (st, v) = call(
        &app,
        a.clone(),
        "POST",
        "/api/storage/format",
        r#"{"device":"/dev/x","fs_type":"zfs","label":"","confirm":"/dev/x"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_filesystem")
    );
    let (st, v) = call(
        &app,
        a.clone(),
        "POST",
        "/api/storage/format",
        r#"{"device":"/dev/x","fs_type":"ext4","label":"","confirm":"/dev/x"}"#,
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_device")
    );
    // Folder picker: roots, then inside, never outside.
    let (st, v) = call(&app, a.clone(), "GET", "/api/storage/folders", "").await;
    assert_eq!(st, StatusCode::OK);
    let root = v["entries"][0]["path"].as_str().unwrap().to_string();
    std::fs::create_dir_all(Path::new(&root).join("Photos")).unwrap();
    std::fs::create_dir_all(Path::new(&root).join(".hidden")).unwrap();
    let (st, v) = call(
        &app,
        a.clone(),
        "GET",
        &format!("/api/storage/folders?path={root}"),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["entries"],
        serde_json::json!([{"name": "Photos", "path": format!("{root}/Photos")}])
    );
    let (st, v) = call(&app, a.clone(), "GET", "/api/storage/folders?path=/etc", "").await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "folder_outside_roots")
    );
    let (st, v) = call(
        &app,
        a,
        "GET",
        &format!("/api/storage/folders?path={root}/../.."),
        "",
    )
    .await;
    assert_eq!(
        (st, code(&v).as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "folder_outside_roots")
    );
}

/// Waits for an event of `kind` whose data satisfies `pred`.
async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<pinas_core::Event>,
    kind: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let ev = rx.recv().await.unwrap();
            if ev.kind == kind && pred(&ev.data) {
                return ev.data;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotplug_events_and_remount() {
    hotplug(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotplug_by_rescanning() {
    hotplug(true).await
}

// The guard is held across awaits on purpose: the whole test owns the loop devices.
#[allow(clippy::await_holding_lock)]
async fn hotplug(polling: bool) {
    require!(ready());
    let _serial = loop_devices();
    let state = tempfile::tempdir().unwrap();
    let ctx = context(state.path());
    let mut rx = ctx.events.subscribe();
    let spawn = if polling {
        pinas_storage::monitor::spawn_polling
    } else {
        pinas_storage::monitor::spawn
    };
    assert!(spawn(ctx.clone()), "disk monitor starts");
    let label = format!(
        "{}{}",
        if polling { "p" } else { "h" },
        std::process::id() % 100000
    );
    let disk = LoopDisk::new(&["mkfs.ext4", "-q", "-L", &label]);
    let name = disk.name().to_string();
    let added = wait_event(&mut rx, "storage.disk.added", |d| {
        d["name"] == name.as_str()
    })
    .await;
    assert_eq!(added["size_bytes"], 64 << 20);

    // A stored mount whose disk goes away and comes back is mounted again by itself.
    let uuid = fs_of(&name, &ctx.paths.disks_dir).unwrap().uuid;
    let c = ctx.clone();
    let u = uuid.clone();
    let m = tokio::task::spawn_blocking(move || mount::mount_uuid(&c, &u))
        .await
        .unwrap()
        .unwrap();
    run("umount", &[&m.mount_point]);
    let img = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).unwrap();
    let img = img.trim();
    run("losetup", &["-d", &disk.dev]);
    wait_event(&mut rx, "storage.disk.removed", |d| {
        d["name"] == name.as_str()
    })
    .await;
    let again = run("losetup", &["-f", "--show", img]);
    let _cleanup = LoopAgain(again.clone());
    settle(&again);
    let mounted = wait_event(&mut rx, "storage.mounted", |d| d["uuid"] == uuid.as_str()).await;
    assert_eq!(mounted["mount_point"], m.mount_point.as_str());
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{again} {} ", m.mount_point))),
        "{table}"
    );
    run("umount", &[&m.mount_point]);
}

/// Detaches a loop device attached by hand.
struct LoopAgain(String);

impl Drop for LoopAgain {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// A disk that holds a mounted filesystem outside the data-disk folder counts as a
/// system disk: none of its other partitions may be mounted or formatted through the
/// API (on the device: the boot partition and the inactive system slot).
#[test]
fn system_disk_partitions_are_refused() {
    require!(ready());
    require!(require_tools(&["sfdisk"]));
    let _serial = loop_devices();
    let state = tempfile::tempdir().unwrap();
    let ctx = context(state.path());
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("sys.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    use std::io::Write as _;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(b"label: dos\n,24M,L\n,,L\n")
        .unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let dev = run("losetup", &["-f", "--show", "-P", img.to_str().unwrap()]);
    let disk = LoopDisk {
        dev: dev.clone(),
        _dir: dir,
    };
    let (p1, p2) = (format!("{dev}p1"), format!("{dev}p2"));
    run("udevadm", &["settle", "--timeout=10"]);
    if !Path::new(&p2).exists() {
        // Kernels whose loop driver does not scan partitions: add them by hand.
        run("partx", &["-a", &dev]);
    }
    for _ in 0..50 {
        if Path::new(&p2).exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    run("mkfs.ext4", &["-q", "-L", "sysroot", &p1]);
    run("mkfs.ext4", &["-q", "-L", "other", &p2]);
    settle(&dev);
    // p1 mounted outside <disks_dir>, as the running system's partitions are.
    let sysmnt = tempfile::tempdir().unwrap();
    run("mount", &[&p1, sysmnt.path().to_str().unwrap()]);
    let d = disks::list_disks(&ctx.paths.disks_dir)
        .unwrap()
        .into_iter()
        .find(|d| d.name == disk.name())
        .expect("listed");
    assert!(
        d.system,
        "a disk with a mount outside the data disks is a system disk"
    );
    let other = d
        .partitions
        .iter()
        .find(|p| p.path == p2)
        .and_then(|p| p.filesystem.clone())
        .expect("p2 has ext4");
    let e = mount::mount_uuid(&ctx, &other.uuid).unwrap_err();
    assert!(matches!(e, StorageError::SystemDisk(_)), "{e}");
    assert!(mount::list_mounts(&ctx).unwrap().is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = FormatRequest {
        device: p2.clone(),
        fs_type: "ext4".into(),
        label: "x".into(),
        confirm: other.uuid.clone(),
    };
    let e = rt
        .block_on(async { pinas_storage::format::start_format(&ctx, req) })
        .unwrap_err();
    assert!(matches!(e, StorageError::SystemDisk(_)), "{e}");

    // Once the disk holds nothing of the system, the same partition mounts.
    run("umount", &[sysmnt.path().to_str().unwrap()]);
    let m = mount::mount_uuid(&ctx, &other.uuid).expect("a data disk's partition mounts");
    assert!(Path::new(&m.mount_point).starts_with(&ctx.paths.disks_dir));
    run("umount", &[&m.mount_point]);
}
