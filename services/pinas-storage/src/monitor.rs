//! Hotplug: udev's block events become `storage.disk.added` / `storage.disk.removed`,
//! a stored filesystem is mounted when its disk appears, and detached when it is pulled.
//!
//! udev sends its events only while `systemd-udevd` runs. Without it (containers, a
//! crashed daemon) the monitor rescans the block devices every [`RESCAN`] and reports the
//! differences the same way.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pinas_core::Context;
use udev::EventType;

use crate::mount;

/// Starts listening to udev's block events on a thread of its own, or rescanning every
/// [`RESCAN`] when udev's netlink socket cannot be opened. Returns false (and logs why)
/// only when the thread cannot start.
pub fn spawn(ctx: Arc<Context>) -> bool {
    spawn_with(ctx, false)
}

/// Like [`spawn`], but rescans every [`RESCAN`] even while udev sends events: the path
/// taken when no udev daemon runs.
pub fn spawn_polling(ctx: Arc<Context>) -> bool {
    spawn_with(ctx, true)
}

fn spawn_with(ctx: Arc<Context>, polling: bool) -> bool {
    // The udev socket cannot move between threads: the thread opens and owns it.
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("udev-monitor".into())
        .spawn(move || {
            let listening = if polling {
                Err(std::io::Error::other("rescanning asked for"))
            } else {
                udev::MonitorBuilder::new()
                    .and_then(|b| b.match_subsystem("block"))
                    .and_then(|b| b.listen())
            };
            let socket = match listening {
                Ok(s) => s,
                Err(e) => {
                    tracing::info!(error = %e, "not listening to udev events; scanning disks every 2 s instead");
                    let mut seen = scan(&ctx);
                    let mut known = seen.keys().cloned().collect();
                    let _ = tx.send(true);
                    loop {
                        std::thread::sleep(RESCAN);
                        rescan(&ctx, &mut seen, &mut known);
                    }
                }
            };
            // Listening already: a disk that comes now is either in this list or an event.
            let mut seen = scan(&ctx);
            let mut known: HashSet<String> = seen.keys().cloned().collect();
            let _ = tx.send(true);
            let timeout = PollTimeout::try_from(RESCAN).unwrap_or(PollTimeout::NONE);
            let mut daemon_was_alive = crate::disks::udev_alive();
            loop {
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(0) => {
                        let alive = crate::disks::udev_alive();
                        if !alive && daemon_was_alive {
                            // Events kept `known` current until now; start the scans from here.
                            tracing::warn!("no udev daemon runs; scanning disks every 2 s instead");
                            seen = scan(&ctx);
                            known = seen.keys().cloned().collect();
                        } else if !alive {
                            rescan(&ctx, &mut seen, &mut known);
                        }
                        daemon_was_alive = alive;
                    }
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "udev monitor stopped");
                        return;
                    }
                }
                for event in socket.iter() {
                    handle(&ctx, &mut known, &event);
                }
            }
        });
    spawned.is_ok() && rx.recv().unwrap_or(false)
}

/// How often disks are rescanned while no udev daemon sends events.
pub const RESCAN: Duration = Duration::from_secs(2);

/// Disk name → (device path, size in bytes, filesystem UUIDs on it).
type Seen = HashMap<String, (String, u64, Vec<String>)>;

/// The disks with media now, and the filesystems on them. `known` (in [`spawn`]) holds
/// their names, so an `add` or `change` that brings media (a USB disk plugged in, a card
/// inserted, a loop device attached) is reported once, and so is its going away.
fn scan(ctx: &Context) -> Seen {
    let disks = crate::disks::list_disks(&ctx.paths.disks_dir).unwrap_or_default();
    disks
        .into_iter()
        .map(|d| {
            let uuids = d
                .filesystem
                .iter()
                .chain(d.partitions.iter().filter_map(|p| p.filesystem.as_ref()))
                .map(|f| f.uuid.clone())
                .filter(|u| !u.is_empty())
                .collect();
            (d.name, (d.path, d.size_bytes, uuids))
        })
        .collect()
}

/// Without udev events: compares a fresh scan with the last one and reports what came
/// and went, as [`handle`] does for events.
fn rescan(ctx: &Arc<Context>, seen: &mut Seen, known: &mut HashSet<String>) {
    let now = scan(ctx);
    for (name, (path, _, uuids)) in seen.iter() {
        let kept = now.get(name);
        for u in uuids {
            if !kept.is_some_and(|(_, _, k)| k.contains(u)) {
                mount::detach_removed(ctx, u);
            }
        }
        if kept.is_none() && known.remove(name) {
            ctx.events.emit(
                "storage.disk.removed",
                serde_json::json!({"name": name, "path": path}),
            );
        }
    }
    for (name, (path, size_bytes, uuids)) in now.iter() {
        let before = seen.get(name);
        if known.insert(name.clone()) {
            ctx.events.emit(
                "storage.disk.added",
                serde_json::json!({"name": name, "path": path, "size_bytes": size_bytes, "uuid": uuids.first()}),
            );
        }
        for u in uuids {
            if !before.is_some_and(|(_, _, b)| b.contains(u)) {
                remount_later(ctx.clone(), u.clone());
            }
        }
    }
    *seen = now;
}

fn handle(ctx: &Arc<Context>, known: &mut HashSet<String>, event: &udev::Event) {
    let dev = event.device();
    let name = dev.sysname().to_string_lossy().into_owned();
    if name.starts_with("ram") || name.starts_with("zram") {
        return;
    }
    let path = dev
        .devnode()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("/dev/{name}"));
    let is_disk = dev.devtype().is_some_and(|t| t == "disk");
    let uuid = dev
        .property_value("ID_FS_UUID")
        .map(|u| u.to_string_lossy().into_owned());
    let kind = event.event_type();
    let sysfs = |rel: &str| std::fs::read_to_string(dev.syspath().join(rel)).ok();
    let size_bytes = sysfs("size")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 512;
    let has_media = kind != EventType::Remove
        && size_bytes > 0
        && (!name.starts_with("loop") || sysfs("loop/backing_file").is_some());
    if is_disk {
        if has_media && known.insert(name.clone()) {
            ctx.events.emit(
                "storage.disk.added",
                serde_json::json!({"name": name, "path": path, "size_bytes": size_bytes, "uuid": uuid}),
            );
        } else if !has_media && known.remove(&name) {
            ctx.events.emit(
                "storage.disk.removed",
                serde_json::json!({"name": name, "path": path}),
            );
        }
    }
    match (kind, uuid) {
        // A change event also follows a new filesystem (mkfs) or media inserted in a reader.
        (EventType::Add | EventType::Change, Some(u)) if has_media => remount_later(ctx.clone(), u),
        (EventType::Remove, Some(u)) => mount::detach_removed(ctx, &u),
        _ => {}
    }
}

fn remount_later(ctx: Arc<Context>, uuid: String) {
    if let Err(e) = mount::remount_stored(&ctx, &uuid) {
        tracing::warn!(uuid, error = %e, "cannot mount stored filesystem on hotplug");
    }
}
