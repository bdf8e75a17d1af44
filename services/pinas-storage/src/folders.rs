//! Where shares may live: the shares root and every mounted data filesystem. Paths are
//! resolved the way the kernel will (symlinks followed, `..` applied) before they are
//! checked, so no spelling of a path escapes these roots.

use std::path::{Component, Path, PathBuf};

use pinas_core::Context;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::StorageError;
use crate::mount;

/// A root folder shares may live under.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FolderEntry {
    /// Display name: the folder name, or the disk's label for a data disk.
    pub name: String,
    /// Absolute path.
    pub path: String,
}

/// The content of a folder, for the folder picker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FolderList {
    /// The folder listed; empty for the list of roots.
    pub path: String,
    /// The folder above, when it is still inside a root; else null.
    pub parent: Option<String>,
    /// Subfolders (hidden ones and `lost+found` left out), sorted by name.
    pub entries: Vec<FolderEntry>,
}

/// The roots, canonical: the shares root (created if missing) first, then the mount
/// points of stored data filesystems that are mounted now.
pub fn data_roots(ctx: &Context) -> Vec<(String, PathBuf)> {
    let mut roots = Vec::new();
    let sr = &ctx.paths.shares_root;
    if let Err(e) = std::fs::create_dir_all(sr) {
        tracing::warn!(path = %sr.display(), error = %e, "cannot create the shares root");
    }
    if let Ok(p) = std::fs::canonicalize(sr) {
        roots.push(("Shares".to_string(), p));
    }
    for m in mount::list_mounts(ctx).unwrap_or_default() {
        if !m.mounted {
            continue;
        }
        if let Ok(p) = std::fs::canonicalize(&m.mount_point) {
            let name = if m.label.is_empty() {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                m.label.clone()
            };
            roots.push((name, p));
        }
    }
    roots
}

/// Resolves `raw` (absolute; the last components may not exist yet) to the path the
/// kernel would use, and checks that it lies inside one of `roots`.
///
/// # Errors
/// [`StorageError::OutsideRoots`] for relative paths, paths that leave every root after
/// `..` or symlinks are applied, dangling symlinks, and `..` below a missing folder.
pub fn resolve_inside(raw: &str, roots: &[PathBuf]) -> Result<PathBuf, StorageError> {
    let outside = || StorageError::OutsideRoots(raw.to_string());
    let p = Path::new(raw);
    if !p.is_absolute() || raw.contains('\0') {
        return Err(outside());
    }
    // Longest prefix that exists (a symlink counts, even a dangling one).
    let comps: Vec<Component<'_>> = p.components().collect();
    let mut split = comps.len();
    while split > 0 {
        let prefix: PathBuf = comps[..split].iter().collect();
        if std::fs::symlink_metadata(&prefix).is_ok() {
            break;
        }
        split -= 1;
    }
    let prefix: PathBuf = comps[..split].iter().collect();
    let mut resolved = std::fs::canonicalize(&prefix).map_err(|_| outside())?;
    for c in &comps[split..] {
        match c {
            Component::Normal(n) => resolved.push(n),
            _ => return Err(outside()),
        }
    }
    if roots.iter().any(|r| resolved.starts_with(r)) {
        Ok(resolved)
    } else {
        Err(outside())
    }
}

/// Lists `path`'s subfolders, or the roots when `path` is empty.
///
/// # Errors
/// [`StorageError::OutsideRoots`], [`StorageError::FolderNotFound`].
pub fn list_folders(ctx: &Context, path: &str) -> Result<FolderList, StorageError> {
    let roots = data_roots(ctx);
    if path.is_empty() {
        return Ok(FolderList {
            path: String::new(),
            parent: None,
            entries: roots
                .into_iter()
                .map(|(name, p)| FolderEntry {
                    name,
                    path: p.display().to_string(),
                })
                .collect(),
        });
    }
    let root_paths: Vec<PathBuf> = roots.iter().map(|(_, p)| p.clone()).collect();
    let dir = resolve_inside(path, &root_paths)?;
    let read =
        std::fs::read_dir(&dir).map_err(|_| StorageError::FolderNotFound(path.to_string()))?;
    let mut entries: Vec<FolderEntry> = read
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.') && name != "lost+found").then(|| FolderEntry {
                path: dir.join(&name).display().to_string(),
                name,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.name.to_lowercase());
    let parent = dir
        .parent()
        .filter(|p| root_paths.iter().any(|r| p.starts_with(r)))
        .map(|p| p.display().to_string());
    Ok(FolderList {
        path: dir.display().to_string(),
        parent,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("media")).unwrap();
        std::fs::create_dir_all(base.join("secret")).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(base.join("nowhere"), root.join("dangling")).unwrap();
        std::os::unix::fs::symlink(root.join("media"), root.join("inner")).unwrap();
        let roots = vec![root.clone()];
        let s = |p: &Path| p.display().to_string();

        assert_eq!(
            resolve_inside(&s(&root.join("media")), &roots).unwrap(),
            root.join("media")
        );
        assert_eq!(
            resolve_inside(&s(&root.join("new/sub")), &roots).unwrap(),
            root.join("new/sub")
        );
        assert_eq!(
            resolve_inside(&s(&root.join("inner")), &roots).unwrap(),
            root.join("media")
        );
        assert_eq!(resolve_inside(&s(&root), &roots).unwrap(), root);
        for bad in [
            s(&root.join("../secret")),
            s(&root.join("media/../../secret")),
            s(&root.join("link")),
            s(&root.join("link/new")),
            s(&root.join("dangling/x")),
            s(&root.join("new/../../x")),
            "/etc".to_string(),
            "relative/path".to_string(),
            String::new(),
        ] {
            assert!(
                matches!(
                    resolve_inside(&bad, &roots),
                    Err(StorageError::OutsideRoots(_))
                ),
                "{bad}"
            );
        }
    }
}
