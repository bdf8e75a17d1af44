//! The state of SMB and NFS, for `GET /api/system/services`.

use crate::render::SambaLayout;
use crate::{samba, Shares};

pub use pinas_core::roles::{ServiceState, ServiceStatus};

impl Shares {
    /// The status of SMB and NFS.
    pub fn services(&self) -> Vec<ServiceStatus> {
        let smb = match (&self.tools.usable, &self.smbd) {
            _ if !self.ctx.config.smb.enabled => (
                ServiceState::Stopped,
                "disabled in config.toml ([smb] enabled = false)".to_string(),
            ),
            (Err(why), _) => (ServiceState::Unavailable, why.clone()),
            (Ok(()), Some(s)) => s.status(),
            (Ok(()), None) if self.ctx.config.dev => (ServiceState::Stopped, "not started".into()),
            (Ok(()), None) => device_smbd_status(&self.layout),
        };
        let nfs = if self.ctx.config.dev {
            (
                ServiceState::Unavailable,
                format!(
                    "NFS exports are applied on the device only; rendered to {}",
                    self.layout.exports.display()
                ),
            )
        } else if samba::find_program("exportfs").is_none() {
            (
                ServiceState::Unavailable,
                "nfs-kernel-server is not installed".to_string(),
            )
        } else {
            let threads = std::fs::read_to_string("/proc/fs/nfsd/threads").unwrap_or_default();
            if threads.trim().parse::<u32>().unwrap_or(0) > 0 {
                (
                    ServiceState::Running,
                    format!("kernel NFS server, {} threads", threads.trim()),
                )
            } else {
                (
                    ServiceState::Stopped,
                    "the kernel NFS server is not running".to_string(),
                )
            }
        };
        vec![
            ServiceStatus {
                name: "smb".into(),
                state: smb.0,
                detail: smb.1,
            },
            ServiceStatus {
                name: "nfs".into(),
                state: nfs.0,
                detail: nfs.1,
            },
        ]
    }
}

/// smbd run by systemd on the device: alive when its pid file names a live process.
fn device_smbd_status(layout: &SambaLayout) -> (ServiceState, String) {
    let pid = std::fs::read_to_string(layout.pid_dir.join("smbd.pid"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    match pid {
        Some(p) if nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok() => (
            ServiceState::Running,
            format!("smbd (pid {p}) on port {}", layout.port),
        ),
        _ => (
            ServiceState::Stopped,
            "smbd is not running (systemctl status smbd)".to_string(),
        ),
    }
}
