//! HTTP handlers: extract, call the domain function on a blocking thread (it runs
//! Samba's tools and touches files), map the result.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use pinas_core::auth::CurrentUser;
use pinas_core::error::ErrorBody;
use pinas_core::Error;

use crate::accounts::{Group, GroupUpdate, NewGroup, NewUser, User, UserUpdate};
use crate::model::{NewShare, Share, ShareUpdate};
use crate::{Shares, SharesError};

type ApiResult<T> = Result<T, Error>;

async fn blocking<T: Send + 'static>(
    s: &Arc<Shares>,
    f: impl FnOnce(&Shares) -> Result<T, SharesError> + Send + 'static,
) -> ApiResult<T> {
    let s = s.clone();
    pinas_core::error::run_blocking("shares", move || f(&s)).await
}

/// Lists shares.
#[utoipa::path(get, path = "/api/shares", tag = "shares",
    responses((status = 200, body = [Share]), (status = 401, body = ErrorBody)))]
pub async fn list_shares(
    State(s): State<Arc<Shares>>,
    Extension(_u): Extension<CurrentUser>,
) -> ApiResult<Json<Vec<Share>>> {
    Ok(Json(blocking(&s, |s| s.list_shares()).await?))
}

/// Creates a share; its folder is created when missing.
#[utoipa::path(post, path = "/api/shares", tag = "shares", request_body = NewShare,
    responses((status = 201, body = Share),
        (status = 409, description = "share_name_taken", body = ErrorBody),
        (status = 422, description = "invalid_share_name, share_path_outside_root, unknown_valid_user, invalid_nfs_client, smb_config_rejected", body = ErrorBody)))]
pub async fn create_share(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Json(body): Json<NewShare>,
) -> ApiResult<(StatusCode, Json<Share>)> {
    u.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(blocking(&s, move |s| s.create_share(body)).await?),
    ))
}

/// One share.
#[utoipa::path(get, path = "/api/shares/{id}", tag = "shares", params(("id" = i64, Path)),
    responses((status = 200, body = Share), (status = 404, description = "share_not_found", body = ErrorBody)))]
pub async fn get_share(
    State(s): State<Arc<Shares>>,
    Extension(_u): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Share>> {
    Ok(Json(blocking(&s, move |s| s.get_share(id)).await?))
}

/// Changes a share; absent fields stay as they are.
#[utoipa::path(put, path = "/api/shares/{id}", tag = "shares", params(("id" = i64, Path)), request_body = ShareUpdate,
    responses((status = 200, body = Share),
        (status = 404, description = "share_not_found", body = ErrorBody),
        (status = 409, description = "share_name_taken", body = ErrorBody),
        (status = 422, description = "as for POST", body = ErrorBody)))]
pub async fn update_share(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(id): Path<i64>,
    Json(body): Json<ShareUpdate>,
) -> ApiResult<Json<Share>> {
    u.require_admin()?;
    Ok(Json(blocking(&s, move |s| s.update_share(id, body)).await?))
}

/// Stops sharing a folder; the folder and its files stay.
#[utoipa::path(delete, path = "/api/shares/{id}", tag = "shares", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, description = "share_not_found", body = ErrorBody)))]
pub async fn delete_share(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    u.require_admin()?;
    blocking(&s, move |s| s.delete_share(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists users (admin).
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, body = [User]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
) -> ApiResult<Json<Vec<User>>> {
    u.require_admin()?;
    Ok(Json(blocking(&s, |s| s.list_users()).await?))
}

/// Creates a user for the web UI and SMB.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User),
        (status = 409, description = "user_exists", body = ErrorBody),
        (status = 422, description = "invalid_username, password_too_short, unknown_group", body = ErrorBody)))]
pub async fn create_user(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Json(body): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    u.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(blocking(&s, move |s| s.create_user(body)).await?),
    ))
}

/// One user (admin, or the user themself).
#[utoipa::path(get, path = "/api/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, description = "user_not_found", body = ErrorBody)))]
pub async fn get_user(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> ApiResult<Json<User>> {
    if u.0.name != name {
        u.require_admin()?;
    }
    Ok(Json(blocking(&s, move |s| s.get_user(&name)).await?))
}

/// Changes a user's password, role or groups (a user may change their own password).
#[utoipa::path(put, path = "/api/users/{name}", tag = "users", params(("name" = String, Path)), request_body = UserUpdate,
    responses((status = 200, body = User),
        (status = 403, description = "admin_required", body = ErrorBody),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 409, description = "last_admin", body = ErrorBody)))]
pub async fn update_user(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
    Json(body): Json<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        blocking(&s, move |s| s.update_user(&name, body, &u)).await?,
    ))
}

/// Deletes a user everywhere (their files stay).
#[utoipa::path(delete, path = "/api/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204),
        (status = 404, description = "user_not_found", body = ErrorBody),
        (status = 409, description = "last_admin, cannot_delete_self, in_use_by_share", body = ErrorBody)))]
pub async fn delete_user(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    u.require_admin()?;
    blocking(&s, move |s| s.delete_user(&name, &u)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists groups (admin).
#[utoipa::path(get, path = "/api/groups", tag = "users",
    responses((status = 200, body = [Group]), (status = 403, body = ErrorBody)))]
pub async fn list_groups(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
) -> ApiResult<Json<Vec<Group>>> {
    u.require_admin()?;
    Ok(Json(blocking(&s, |s| s.list_groups()).await?))
}

/// Creates a group.
#[utoipa::path(post, path = "/api/groups", tag = "users", request_body = NewGroup,
    responses((status = 201, body = Group),
        (status = 409, description = "group_exists", body = ErrorBody),
        (status = 422, description = "invalid_group_name, unknown_member", body = ErrorBody)))]
pub async fn create_group(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Json(body): Json<NewGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    u.require_admin()?;
    Ok((
        StatusCode::CREATED,
        Json(blocking(&s, move |s| s.create_group(body)).await?),
    ))
}

/// One group (admin).
#[utoipa::path(get, path = "/api/groups/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = Group), (status = 404, description = "group_not_found", body = ErrorBody)))]
pub async fn get_group(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> ApiResult<Json<Group>> {
    u.require_admin()?;
    Ok(Json(blocking(&s, move |s| s.get_group(&name)).await?))
}

/// Changes a group's description or members.
#[utoipa::path(put, path = "/api/groups/{name}", tag = "users", params(("name" = String, Path)), request_body = GroupUpdate,
    responses((status = 200, body = Group),
        (status = 404, description = "group_not_found", body = ErrorBody),
        (status = 422, description = "unknown_member", body = ErrorBody)))]
pub async fn update_group(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
    Json(body): Json<GroupUpdate>,
) -> ApiResult<Json<Group>> {
    u.require_admin()?;
    Ok(Json(
        blocking(&s, move |s| s.update_group(&name, body)).await?,
    ))
}

/// Deletes a group (its members stay).
#[utoipa::path(delete, path = "/api/groups/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204),
        (status = 404, description = "group_not_found", body = ErrorBody),
        (status = 409, description = "in_use_by_share", body = ErrorBody)))]
pub async fn delete_group(
    State(s): State<Arc<Shares>>,
    Extension(u): Extension<CurrentUser>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    u.require_admin()?;
    blocking(&s, move |s| s.delete_group(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}
