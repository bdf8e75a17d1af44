//! PiNAS storage: data disks and their filesystems.
//!
//! This crate owns listing block devices (sysfs and the udev database), mounting data
//! filesystems under `<disks_dir>/<label or uuid>` and remembering them (`mounts` table),
//! formatting, the folder picker, and hotplug events (`storage.disk.added`,
//! `storage.disk.removed`, `storage.mounted`, `storage.unmounted`, `task.progress`).
//!
//! It does not own shares, Samba or NFS (`pinas-shares`), nor S.M.A.R.T. Routes are
//! served by the web role behind its session and CSRF checks:
//!
//! | route | who |
//! |---|---|
//! | `GET /api/storage/disks` | any user |
//! | `GET /api/storage/mounts` | any user |
//! | `POST /api/storage/mount` `{"uuid"}` | admin |
//! | `POST /api/storage/unmount` `{"uuid","force"?}` | admin |
//! | `POST /api/storage/format` `{"device","fs_type","label","confirm"}` | admin |
//! | `GET /api/storage/folders?path=` | admin |

pub mod api;
pub mod disks;
mod error;
pub mod folders;
pub mod format;
mod host;
pub mod monitor;
pub mod mount;
pub mod mountinfo;
pub mod remote_mount;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use pinas_core::Context;

pub use error::StorageError;

/// The storage service: handles on the shared context; cheap to share.
pub struct Storage {
    ctx: Arc<Context>,
}

impl Storage {
    /// Mounts the stored filesystems whose disks are attached and starts the udev
    /// monitor. A missing udev only turns hotplug off (logged).
    ///
    /// # Errors
    /// None today; the signature leaves room for start-up checks.
    pub async fn start(ctx: Arc<Context>) -> Result<Arc<Storage>, pinas_core::Error> {
        // Listen first: early in boot udev may still be announcing disks, and a disk it
        // announces after the pass below is mounted by the monitor.
        monitor::spawn(ctx.clone());
        let c = ctx.clone();
        let n = tokio::task::spawn_blocking(move || mount::reapply(&c))
            .await
            .unwrap_or(0);
        if n > 0 {
            tracing::info!(count = n, "stored filesystems mounted");
        }
        Ok(Arc::new(Storage { ctx }))
    }

    /// A storage service without the start-up work (for tests).
    pub fn new(ctx: Arc<Context>) -> Arc<Storage> {
        Arc::new(Storage { ctx })
    }

    /// The routes, with full paths (`/api/storage/...`) and state applied.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/api/storage/disks", get(api::get_disks))
            .route("/api/storage/mounts", get(api::get_mounts))
            .route("/api/storage/mount", post(api::post_mount))
            .route("/api/storage/unmount", post(api::post_unmount))
            .route("/api/storage/format", post(api::post_format))
            .route("/api/storage/folders", get(api::get_folders))
            .with_state(self.clone())
    }

    /// The canonical folders shares may live under: the shares root and the mounted
    /// data filesystems.
    pub fn data_roots(&self) -> Vec<PathBuf> {
        folders::data_roots(&self.ctx)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }
}

/// The storage API's OpenAPI paths and schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(api::get_disks, api::get_mounts, api::post_mount, api::post_unmount,
          api::post_format, api::get_folders),
    components(schemas(disks::Disk, disks::Partition, disks::Filesystem, mount::MountInfo,
        api::MountRequest, api::UnmountRequest, format::FormatRequest, format::TaskStarted,
        folders::FolderList, folders::FolderEntry, pinas_core::error::ErrorBody)),
    tags((name = "storage", description = "Disks, filesystems, mounts and formatting"))
)]
pub struct ApiDoc;
