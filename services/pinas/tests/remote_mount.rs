//! The companion's remote share mounted by the web role on the companion's request: the
//! companion's mounter (`RequestMounter`) against the web role's request socket
//! (`pinas_storage::remote_mount::serve`), over a real Unix socket whose caller the
//! kernel names (`SO_PEERCRED`).
//!
//! This machine's kernel has no SMB or NFS client, and PID 1 is not systemd, so the
//! mount itself is recorded here ([`Recorder`]: what the web role would ask PID 1 for)
//! or, in one test, attempted with the real mount helper, whose failure must come back
//! to the companion as the answer. The kernel mount is proven in the image test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pinas_companion::remote::{MountSpec, Mounter, RemoteSettingsInput, RequestMounter};
use pinas_storage::remote_mount::{serve, Checked, Exec, Policy, SystemExec};

/// The credentials copy's mode and contents, as they were during the mount.
type Copy = Option<(u32, String)>;

/// Records the mounts it is given, and the credentials copy as it was during the mount.
#[derive(Default)]
struct Recorder {
    mounts: Mutex<Vec<(Checked, Copy)>>,
    unmounts: Mutex<Vec<PathBuf>>,
}

impl Exec for Recorder {
    fn mount(&self, c: &Checked) -> Result<(), String> {
        let copy = c
            .options
            .iter()
            .find_map(|o| o.strip_prefix("credentials="))
            .map(|p| {
                let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
                (mode, std::fs::read_to_string(p).unwrap())
            });
        self.mounts.lock().unwrap().push((c.clone(), copy));
        Ok(())
    }

    fn unmount(&self, at: &Path) -> Result<(), String> {
        self.unmounts.lock().unwrap().push(at.to_path_buf());
        Ok(())
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    policy: Policy,
    socket: PathBuf,
}

fn setup(allowed_uid: u32) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("companion/remote");
    std::fs::create_dir_all(remote.join("mnt")).unwrap();
    let host = tmp.path().join("remote-mnt");
    std::fs::create_dir_all(&host).unwrap();
    let private = tmp.path().join("run");
    std::fs::create_dir_all(&private).unwrap();
    let policy = Policy {
        allowed_uid,
        mount_point: remote.join("mnt"),
        host_mount_point: host,
        credentials: remote.join("credentials"),
        private_dir: private,
    };
    let socket = tmp.path().join("remote-mount.sock");
    Setup {
        _tmp: tmp,
        policy,
        socket,
    }
}

async fn start(s: &Setup, exec: Arc<dyn Exec>) {
    let (socket, policy) = (s.socket.clone(), s.policy.clone());
    tokio::spawn(async move { serve(&socket, policy, exec, std::future::pending()).await });
    for _ in 0..200 {
        if s.socket.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the request socket did not appear");
}

fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

fn smb_spec(s: &Setup, user: bool) -> MountSpec {
    let (settings, _) = RemoteSettingsInput {
        enabled: true,
        kind: "smb".into(),
        server: "10.0.2.2".into(),
        share: "spool".into(),
        username: if user { "pi".into() } else { String::new() },
        password: None,
        version: None,
        port: None,
    }
    .checked()
    .unwrap();
    MountSpec::render(&settings, &s.policy.credentials, user)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn the_companions_mount_is_made_at_the_root_owned_folder_with_a_private_credentials_copy() {
    let s = setup(uid());
    let rec = Arc::new(Recorder::default());
    start(&s, rec.clone()).await;
    std::fs::write(&s.policy.credentials, "username=pi\npassword=s3cret\n").unwrap();
    std::fs::set_permissions(
        &s.policy.credentials,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let m = RequestMounter {
        socket: s.socket.clone(),
    };
    let spec = smb_spec(&s, true);
    let mp = s.policy.mount_point.clone();
    let m2 = m.clone();
    blocking(move || m2.mount(&spec, &mp)).await.unwrap();
    {
        let mounts = rec.mounts.lock().unwrap();
        assert_eq!(mounts.len(), 1);
        let (c, copy) = &mounts[0];
        assert_eq!(c.fs_type, "cifs");
        assert_eq!(c.source, "//10.0.2.2/spool");
        assert_eq!(c.at, s.policy.host_mount_point);
        let copy_path = s.policy.private_dir.join("remote-credentials");
        assert_eq!(
            c.options.join(","),
            format!(
                "credentials={},vers=3,soft,echo_interval=10,iocharset=utf8,noserverino,_netdev,nosuid,nodev,noexec,uid={},gid=100,file_mode=0664,dir_mode=0775",
                copy_path.display(),
                uid()
            )
        );
        assert_eq!(
            copy.as_ref().unwrap(),
            &(0o600, "username=pi\npassword=s3cret\n".to_string())
        );
        // The copy is gone once mounted.
        assert!(!copy_path.exists());
    }
    let mp = s.policy.mount_point.clone();
    blocking(move || m.unmount(&mp)).await.unwrap();
    assert_eq!(
        *rec.unmounts.lock().unwrap(),
        vec![s.policy.host_mount_point.clone()]
    );
}

#[tokio::test]
async fn a_caller_of_another_uid_is_refused() {
    // The companion's uid is another than this test's: the kernel says who connects.
    let s = setup(uid() + 1);
    let rec = Arc::new(Recorder::default());
    start(&s, rec.clone()).await;
    let m = RequestMounter {
        socket: s.socket.clone(),
    };
    let spec = smb_spec(&s, false);
    let mp = s.policy.mount_point.clone();
    let m2 = m.clone();
    let e = blocking(move || m2.mount(&spec, &mp)).await.unwrap_err();
    assert!(e.contains("(forbidden)"), "{e}");
    assert!(e.contains(&format!("uid {} may not", uid())), "{e}");
    let mp = s.policy.mount_point.clone();
    let e = blocking(move || m.unmount(&mp)).await.unwrap_err();
    assert!(e.contains("(forbidden)"), "{e}");
    assert!(rec.mounts.lock().unwrap().is_empty());
    assert!(rec.unmounts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_clear_error_and_nothing_is_mounted() {
    let s = setup(uid());
    let rec = Arc::new(Recorder::default());
    start(&s, rec.clone()).await;
    let m = RequestMounter {
        socket: s.socket.clone(),
    };
    let good = smb_spec(&s, false);
    let mp = s.policy.mount_point.clone();
    let mut cases: Vec<(MountSpec, PathBuf, &str, &str)> = vec![
        (
            good.clone(),
            PathBuf::from("/etc"),
            "invalid_mount_point",
            "/etc is not the remote share's mount point",
        ),
        (
            MountSpec {
                fs_type: "ext4",
                ..good.clone()
            },
            mp.clone(),
            "invalid_fs_type",
            "must be cifs or nfs, not \"ext4\"",
        ),
        (
            MountSpec {
                source: "//nas/../etc".into(),
                ..good.clone()
            },
            mp.clone(),
            "invalid_source",
            "is not a cifs source",
        ),
        (
            MountSpec {
                options: vec!["guest".into(), "suid".into()],
                ..good.clone()
            },
            mp.clone(),
            "invalid_option",
            "the option \"suid\" is not allowed for cifs",
        ),
        (
            MountSpec {
                options: vec!["credentials=/etc/shadow".into()],
                ..good.clone()
            },
            mp.clone(),
            "invalid_option",
            "credentials=/etc/shadow",
        ),
    ];
    // The credentials file named, but readable by others; then a link to another file.
    let creds = s.policy.credentials.clone();
    let with_creds = smb_spec(&s, true);
    std::fs::write(&creds, "username=pi\npassword=x\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    cases.push((
        with_creds.clone(),
        mp.clone(),
        "invalid_credentials",
        "mode 0600",
    ));
    for (spec, at, code, words) in cases {
        let m2 = m.clone();
        let shown = format!("{spec:?} at {}", at.display());
        let e = blocking(move || m2.mount(&spec, &at)).await.unwrap_err();
        assert!(e.contains(&format!("({code})")), "{shown}: {e}");
        assert!(e.contains(words), "{shown}: {e}");
    }
    let elsewhere = s.policy.private_dir.join("other");
    std::fs::write(&elsewhere, "username=root\npassword=y\n").unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&creds).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &creds).unwrap();
    let m2 = m.clone();
    let e = blocking(move || m2.mount(&with_creds, &mp))
        .await
        .unwrap_err();
    assert!(e.contains("(invalid_credentials)"), "{e}");
    assert!(rec.mounts.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_real_mount_helpers_answer_reaches_the_companion() {
    // SystemExec without systemd runs mount.cifs: missing here, or failing (no cifs in
    // this kernel, nothing listening): either way the companion gets its words back.
    let s = setup(uid());
    start(&s, Arc::new(SystemExec::new(false))).await;
    let m = RequestMounter {
        socket: s.socket.clone(),
    };
    let spec = smb_spec(&s, false);
    let mp = s.policy.mount_point.clone();
    let e = blocking(move || m.mount(&spec, &mp)).await.unwrap_err();
    assert!(e.contains("(mount_failed)"), "{e}");
    assert!(e.contains("mount.cifs"), "{e}");
    assert!(!pinas_storage::mountinfo::read()
        .unwrap()
        .iter()
        .any(|e| e.mount_point == s.policy.host_mount_point));
}
