//! Hotplug: udev's block events become `storage.disk.added` / `storage.disk.removed`,
//! a stored filesystem is mounted when its disk appears, and detached when it is pulled.

use std::os::fd::AsFd;
use std::sync::Arc;

use pinas_core::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
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
                Ok(s) => {
                    let _ = tx.send(true);
                    s
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to udev events; disk hotplug is off");
                    let _ = tx.send(false);
                    return;
                }
            };
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
                    handle(&ctx, &event);
                }
            }
        });
    spawned.is_ok() && rx.recv().unwrap_or(false)
}

fn handle(ctx: &Arc<Context>, event: &udev::Event) {
    let dev = event.device();
    let name = dev.sysname().to_string_lossy().into_owned();
    if name.starts_with("ram") || name.starts_with("zram") {
        return;
    }
    let path = dev
        .devnode()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| format!("/dev/{name}"));
    let devtype = dev
        .devtype()
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uuid = dev
        .property_value("ID_FS_UUID")
        .map(|u| u.to_string_lossy().into_owned());
    let data = serde_json::json!({"name": name, "path": path, "devtype": devtype, "uuid": uuid});
    match event.event_type() {
        EventType::Add => {
            ctx.events.emit("storage.disk.added", data);
            if let Some(u) = uuid {
                remount_later(ctx.clone(), u);
            }
        }
        // A change event follows a new filesystem (mkfs) or media inserted in a reader.
        EventType::Change => {
            if let Some(u) = uuid {
                remount_later(ctx.clone(), u);
            }
        }
        EventType::Remove => {
            if let Some(u) = &uuid {
                mount::detach_removed(ctx, u);
            }
            ctx.events.emit("storage.disk.removed", data);
        }
        _ => {}
    }
}

fn remount_later(ctx: Arc<Context>, uuid: String) {
    if let Err(e) = mount::remount_stored(&ctx, &uuid) {
        tracing::warn!(uuid, error = %e, "cannot mount stored filesystem on hotplug");
    }
}
