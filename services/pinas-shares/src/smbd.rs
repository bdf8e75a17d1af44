//! Supervising smbd as a child process in dev mode: started in the foreground with the
//! rendered configuration, restarted with backoff when it dies, stopped on shutdown.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

use crate::samba::SambaTools;
use crate::ServiceState;

/// Longest wait between two restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the backoff.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// The supervised smbd.
pub struct Smbd {
    state: Mutex<(ServiceState, String)>,
    pid: AtomicU32,
    stopping: AtomicBool,
    stop: Notify,
    done: Notify,
    finished: AtomicBool,
    last_lines: Mutex<VecDeque<String>>,
}

impl Smbd {
    /// Starts supervising smbd with `tools`' configuration and environment.
    pub fn spawn(tools: SambaTools) -> Arc<Smbd> {
        let s = Arc::new(Smbd {
            state: Mutex::new((ServiceState::Stopped, "starting".into())),
            pid: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            done: Notify::new(),
            finished: AtomicBool::new(false),
            last_lines: Mutex::new(VecDeque::new()),
        });
        let me = s.clone();
        tokio::spawn(async move {
            me.run(tools).await;
            me.finished.store(true, Ordering::Release);
            me.done.notify_waiters();
        });
        s
    }

    /// `(state, detail)` now.
    pub fn status(&self) -> (ServiceState, String) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The running smbd's process id.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Acquire)).filter(|p| *p != 0)
    }

    fn set(&self, st: ServiceState, detail: String) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (st, detail);
    }

    async fn run(self: &Arc<Self>, tools: SambaTools) {
        kill_stale(&tools);
        let mut backoff = Duration::from_secs(1);
        let port = tools.layout.port;
        while !self.stopping.load(Ordering::Acquire) {
            let started = Instant::now();
            let mut std_cmd = tools.command("smbd");
            // smbd signals its whole process group when it stops; a group of its own keeps
            // PiNAS (and the terminal's job) out of it.
            std::os::unix::process::CommandExt::process_group(&mut std_cmd, 0);
            let mut cmd = tokio::process::Command::from(std_cmd);
            cmd.args([
                "-F",
                "--no-process-group",
                "--debug-stdout",
                "-d",
                "1",
                "-s",
            ])
            .arg(&tools.layout.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    self.set(ServiceState::Unavailable, format!("cannot start smbd: {e}"));
                    return;
                }
            };
            self.pid.store(child.id().unwrap_or(0), Ordering::Release);
            self.set(
                ServiceState::Running,
                format!("smbd (pid {}) on 127.0.0.1:{port}", child.id().unwrap_or(0)),
            );
            tracing::info!(pid = child.id(), port, "smbd started");
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let me = self.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(pipe).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        tracing::debug!(target: "smbd", "{l}");
                        let mut q = me.last_lines.lock().unwrap_or_else(|e| e.into_inner());
                        if q.len() >= 20 {
                            q.pop_front();
                        }
                        q.push_back(l);
                    }
                });
            }
            let pgid = child.id().map(|p| Pid::from_raw(p as i32));
            let status = tokio::select! {
                s = child.wait() => s,
                _ = self.stop.notified() => {
                    terminate(&mut child).await;
                    self.pid.store(0, Ordering::Release);
                    self.set(ServiceState::Stopped, "stopped".into());
                    return;
                }
            };
            self.pid.store(0, Ordering::Release);
            // Child processes of a dead smbd (notifyd, cleanupd, clients) would keep the port.
            if let Some(g) = pgid {
                let _ = nix::sys::signal::killpg(g, Signal::SIGKILL);
            }
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            if started.elapsed() > STABLE_RUN {
                backoff = Duration::from_secs(1);
            }
            let last = self
                .last_lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .cloned()
                .unwrap_or_default();
            let why = format!(
                "smbd exited ({}); restarting in {}s. Last output: {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string()),
                backoff.as_secs(),
                last.trim()
            );
            tracing::warn!("{why}");
            self.set(ServiceState::Stopped, why);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.notified() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.set(ServiceState::Stopped, "stopped".into());
    }

    /// Stops smbd (SIGTERM, then SIGKILL after 5 s) and the supervision.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let done = self.done.notified();
        self.stop.notify_waiters();
        self.stop.notify_one();
        if !self.finished.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(Duration::from_secs(8), done).await;
        }
    }
}

/// Stops smbd and every process of its group (notifyd, cleanupd, client connections).
async fn terminate(child: &mut tokio::process::Child) {
    let Some(pid) = child.id() else {
        return;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    // Give its children a moment to follow their parent, then make sure.
    for _ in 0..20 {
        if nix::sys::signal::killpg(group, None).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
    tracing::info!(pid, "smbd stopped");
}

/// Ends an smbd left running by a PiNAS that was killed (it would hold the port): the
/// pid file names it, and it is only signalled if it is an smbd using our config.
fn kill_stale(tools: &SambaTools) {
    let pid_file = tools.layout.pid_dir.join("smbd.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let conf = tools.layout.conf.display().to_string();
    if cmdline.contains("smbd") && cmdline.contains(&conf) {
        tracing::warn!(pid, "stopping an smbd left over from an earlier run");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        for _ in 0..50 {
            if kill(Pid::from_raw(pid), None).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // It led its own process group: end its children too.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
