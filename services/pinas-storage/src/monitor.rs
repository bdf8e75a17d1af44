//! Hotplug: udev's block events become `storage.disk.added` / `storage.disk.removed`,
//! a stored filesystem is mounted when its disk appears, and detached when it is pulled.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pinas_core::Context;
use udev::EventType;

use crate::mount;

/// Starts listening to udev's block events on a thread of its own. Returns false (and
/// logs why) when udev's netlink socket cannot be opened; PiNAS then works without
/// hotplug.
pub fn spawn(ctx: Arc<Context>) -> bool {
    // The udev socket cannot move between threads: the thread opens and owns it.
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("udev-monitor".into())
        .spawn(move || {
            let socket = match udev::MonitorBuilder::new()
                .and_then(|b| b.match_subsystem("block"))
                .and_then(|b| b.listen())
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to udev events; disk hotplug is off");
                    let _ = tx.send(false);
                    return;
                }
            };
            // Listening already: a disk that comes now is either in this list or an event.
            let mut known = initial_disks(&ctx);
            let _ = tx.send(true);
            loop {
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::NONE) {
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

/// Disks with media seen so far, so an `add` or `change` that brings media (a USB disk
/// plugged in, a card inserted, a loop device attached) is reported once, and so is its
/// going away.
fn initial_disks(ctx: &Context) -> HashSet<String> {
    crate::disks::list_disks(&ctx.paths.disks_dir)
        .map(|d| d.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
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
