//! HTTP handlers: extract, call the domain function, map the result.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use pinas_core::auth::CurrentUser;
use pinas_core::error::ErrorBody;
use pinas_core::Error;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::disks::{self, Disk};
use crate::folders::{self, FolderList};
use crate::format::{self, FormatRequest, TaskStarted};
use crate::mount::{self, MountInfo};
use crate::Storage;

type ApiResult<T> = Result<T, Error>;

/// Runs blocking storage work (sysfs, mount(2), statvfs) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::StorageError> + Send + 'static,
) -> ApiResult<T> {
    pinas_core::error::run_blocking("storage", f).await
}

/// `POST /api/storage/mount` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// Filesystem UUID from `GET /api/storage/disks`.
    pub uuid: String,
}

/// `POST /api/storage/unmount` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmountRequest {
    pub uuid: String,
    /// Unmount even while shares live on it, and detach it if files are open.
    #[serde(default)]
    pub force: bool,
}

/// `GET /api/storage/folders` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FoldersQuery {
    /// Folder to list; empty or absent for the roots.
    #[serde(default)]
    pub path: String,
}

/// Lists attached disks, their partitions and filesystems.
#[utoipa::path(get, path = "/api/storage/disks", tag = "storage",
    responses((status = 200, body = [Disk]), (status = 401, body = ErrorBody)))]
pub async fn get_disks(
    State(s): State<Arc<Storage>>,
    Extension(_user): Extension<CurrentUser>,
) -> ApiResult<Json<Vec<Disk>>> {
    let dir = s.ctx.paths.disks_dir.clone();
    Ok(Json(blocking(move || disks::list_disks(&dir)).await?))
}

/// Lists the data filesystems PiNAS mounts (also while their disk is away).
#[utoipa::path(get, path = "/api/storage/mounts", tag = "storage",
    responses((status = 200, body = [MountInfo]), (status = 401, body = ErrorBody)))]
pub async fn get_mounts(
    State(s): State<Arc<Storage>>,
    Extension(_user): Extension<CurrentUser>,
) -> ApiResult<Json<Vec<MountInfo>>> {
    let ctx = s.ctx.clone();
    Ok(Json(blocking(move || mount::list_mounts(&ctx)).await?))
}

/// Mounts a filesystem under the disks folder and remembers it across restarts.
#[utoipa::path(post, path = "/api/storage/mount", tag = "storage", request_body = MountRequest,
    responses((status = 200, body = MountInfo),
        (status = 404, description = "filesystem_not_found", body = ErrorBody),
        (status = 409, description = "mounted_elsewhere", body = ErrorBody),
        (status = 422, description = "invalid_uuid, unsupported_filesystem", body = ErrorBody)))]
pub async fn post_mount(
    State(s): State<Arc<Storage>>,
    Extension(user): Extension<CurrentUser>,
    Json(req): Json<MountRequest>,
) -> ApiResult<Json<MountInfo>> {
    user.require_admin()?;
    let ctx = s.ctx.clone();
    Ok(Json(
        blocking(move || mount::mount_uuid(&ctx, &req.uuid)).await?,
    ))
}

/// Unmounts a filesystem and forgets it; refuses while shares use it unless `force`.
#[utoipa::path(post, path = "/api/storage/unmount", tag = "storage", request_body = UnmountRequest,
    responses((status = 200, body = MountInfo),
        (status = 404, description = "not_mounted", body = ErrorBody),
        (status = 409, description = "mount_in_use, device_busy", body = ErrorBody)))]
pub async fn post_unmount(
    State(s): State<Arc<Storage>>,
    Extension(user): Extension<CurrentUser>,
    Json(req): Json<UnmountRequest>,
) -> ApiResult<Json<MountInfo>> {
    user.require_admin()?;
    let ctx = s.ctx.clone();
    Ok(Json(
        blocking(move || mount::unmount_uuid(&ctx, &req.uuid, req.force)).await?,
    ))
}

/// Starts creating a filesystem; progress comes as `task.progress` events.
#[utoipa::path(post, path = "/api/storage/format", tag = "storage", request_body = FormatRequest,
    responses((status = 202, body = TaskStarted),
        (status = 409, description = "device_in_use, system_disk", body = ErrorBody),
        (status = 422, description = "confirm_mismatch, unknown_device, invalid_label, unsupported_filesystem", body = ErrorBody)))]
pub async fn post_format(
    State(s): State<Arc<Storage>>,
    Extension(user): Extension<CurrentUser>,
    Json(req): Json<FormatRequest>,
) -> ApiResult<(StatusCode, Json<TaskStarted>)> {
    user.require_admin()?;
    let ctx = s.ctx.clone();
    let started = format::start_format(&ctx, req)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Lists folders for the share folder picker: the roots, or a folder inside one.
#[utoipa::path(get, path = "/api/storage/folders", tag = "storage", params(FoldersQuery),
    responses((status = 200, body = FolderList),
        (status = 404, description = "folder_not_found", body = ErrorBody),
        (status = 422, description = "folder_outside_roots", body = ErrorBody)))]
pub async fn get_folders(
    State(s): State<Arc<Storage>>,
    Extension(user): Extension<CurrentUser>,
    Query(q): Query<FoldersQuery>,
) -> ApiResult<Json<FolderList>> {
    user.require_admin()?;
    let ctx = s.ctx.clone();
    Ok(Json(
        blocking(move || folders::list_folders(&ctx, &q.path)).await?,
    ))
}
