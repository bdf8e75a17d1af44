//! The skip protocol of PiNAS tests: a test that cannot run here (not root, a peer such
//! as `dig` or `smbd` missing, test data absent) says so and is counted as skipped,
//! never as passed.
//!
//! A skip
//! - prints `SKIP <crate>::<test>: <reason>` to stderr,
//! - appends the line `<crate>::<test>: <reason>` to the file named by
//!   `$PINAS_TEST_SKIPS` when that variable is set (`scripts/test` counts these lines and
//!   subtracts them from cargo's "passed"),
//! - and under `CI=true` panics instead, so the test fails: CI runs as root with every
//!   tool `scripts/setup --test` installs, where nothing may be skipped.
//!
//! ```no_run
//! use pinas_testkit::{require, require_root, require_tools};
//!
//! #[test]
//! fn smbclient_writes_a_file() {
//!     require!(require_root("smbd switches to the share user"));
//!     require!(require_tools(&["smbd", "smbclient"]));
//!     // ... the test proper
//! }
//! ```
//!
//! This crate is for tests only (a dev-dependency); it is not part of any PiNAS binary.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming the file skips are appended to (one line per skip).
pub const SKIPS_ENV: &str = "PINAS_TEST_SKIPS";

/// Why a test cannot run here. Returned by the `require_*` checks; hand it to
/// [`require!`] (or [`skip`]) to report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    reason: String,
}

impl Skip {
    /// A skip for `reason`, a sentence saying what is missing and how to get it.
    pub fn new(reason: impl Into<String>) -> Skip {
        Skip {
            reason: reason.into(),
        }
    }

    /// The reason given at construction.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// `Ok` when the test runs as root (effective uid 0); otherwise a [`Skip`] saying
/// "needs root: `why`". `why` names what needs it, e.g. "loop devices and mount(2)".
pub fn require_root(why: &str) -> Result<(), Skip> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Skip::new(format!("needs root: {why}")))
    }
}

/// `Ok` when every program in `tools` is found by [`which`]; otherwise a [`Skip`]
/// naming all the missing ones.
pub fn require_tools(tools: &[&str]) -> Result<(), Skip> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Skip::new(format!(
            "{} not installed (scripts/setup --test installs every test tool)",
            match missing.as_slice() {
                [one] => format!("{one} is"),
                many => format!("{} are", many.join(", ")),
            }
        )))
    }
}

/// `Ok(dir)` when `dir` is a directory; otherwise a [`Skip`] reading
/// "`what`: no directory `dir`". For test data kept outside the repository.
pub fn require_dir(dir: &Path, what: &str) -> Result<PathBuf, Skip> {
    if dir.is_dir() {
        Ok(dir.to_path_buf())
    } else {
        Err(Skip::new(format!("{what}: no directory {}", dir.display())))
    }
}

/// The full path of `prog`: searched in `$PATH`, then in `/usr/sbin` and `/sbin`
/// (where Debian puts dnsmasq, smbd and losetup, which a non-root PATH often lacks).
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(prog))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where a skip is reported: the CI flag and the skip log, read once from the process
/// environment by [`Protocol::from_env`] or given directly (as the tests of this crate
/// do, so they never race on the process environment).
#[derive(Debug, Clone, Default)]
pub struct Protocol {
    /// `CI=true`: a skip is a failure.
    pub ci: bool,
    /// File each skip is appended to (`$PINAS_TEST_SKIPS`).
    pub log: Option<PathBuf>,
}

impl Protocol {
    /// `ci` is true when `CI` is exactly `true` (as GitHub Actions, GitLab CI and
    /// `scripts/test` set it); `log` is `$PINAS_TEST_SKIPS` when set and not empty.
    pub fn from_env() -> Protocol {
        Protocol {
            ci: std::env::var("CI").is_ok_and(|v| v == "true"),
            log: std::env::var_os(SKIPS_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Reports that `test` (`<crate>::<test>`) is skipped for `reason`: prints
    /// `SKIP <test>: <reason>` to stderr and appends `<test>: <reason>` to `log`.
    ///
    /// # Panics
    /// Under `ci`, always (the test fails, and nothing is appended); and when `log` is
    /// set but cannot be appended to, since an unrecorded skip would count as a pass.
    pub fn skip(&self, test: &str, reason: &str) {
        let reason = reason.replace('\n', " ");
        if self.ci {
            panic!("SKIP {test}: {reason}: under CI=true a skip is a failure");
        }
        // Straight to the stderr stream: libtest captures eprintln! of passing tests, and a
        // skip must be seen.
        let _ = writeln!(std::io::stderr().lock(), "SKIP {test}: {reason}");
        if let Some(log) = &self.log {
            // One write of the whole line, with O_APPEND: lines of tests running in
            // parallel (threads and test binaries) never interleave.
            let line = format!("{test}: {reason}\n");
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .unwrap_or_else(|e| {
                    panic!("cannot record the skip of {test} in {}: {e}", log.display())
                });
        }
    }
}

/// Reports that `test` is skipped for `reason`, as [`Protocol::skip`] with the
/// process environment.
///
/// # Panics
/// Under `CI=true`, always; see [`Protocol::skip`].
pub fn skip(test: &str, reason: &str) {
    Protocol::from_env().skip(test, reason)
}

/// `<krate>::<test>` for the running test: libtest names each test's thread after the
/// test's path (`dig_answers_local_records`, `certificate::tests::makes_one`);
/// `fallback` (the caller's module path) when the thread has no such name.
pub fn test_name(krate: &str, fallback: &str) -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => format!("{krate}::{n}"),
        _ => format!("{krate}::{fallback}"),
    }
}

/// Evaluates a `Result<T, Skip>` (`require_root(..)`, `require_tools(..)`, ...): yields
/// the `T` when `Ok`; when `Err`, reports the skip for the running test (see [`skip`])
/// and returns `()` from the enclosing function (a test or a helper returning `()`).
/// Under `CI=true` it panics instead.
///
/// `require!(check, protocol)` reports through the given [`Protocol`] instead of the
/// process environment.
#[macro_export]
macro_rules! require {
    ($check:expr) => {
        $crate::require!($check, $crate::Protocol::from_env())
    };
    ($check:expr, $protocol:expr) => {
        match $check {
            ::core::result::Result::Ok(v) => v,
            ::core::result::Result::Err(skip) => {
                $crate::Protocol::skip(
                    &$protocol,
                    &$crate::test_name(env!("CARGO_PKG_NAME"), module_path!()),
                    $crate::Skip::reason(&skip),
                );
                return;
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn a_skip_is_appended_to_the_log() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("skips");
        let p = Protocol {
            ci: false,
            log: Some(log.clone()),
        };
        p.skip("pinas-x::one", "dig is not installed");
        p.skip("pinas-x::two", "needs root:\nloop devices");
        assert_eq!(
            read(&log),
            "pinas-x::one: dig is not installed\npinas-x::two: needs root: loop devices\n"
        );
    }

    #[test]
    fn without_a_log_a_skip_only_prints() {
        Protocol::default().skip("pinas-x::quiet", "nothing to record");
    }

    #[test]
    fn under_ci_a_skip_fails_and_records_nothing() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("skips");
        let p = Protocol {
            ci: true,
            log: Some(log.clone()),
        };
        let err = std::panic::catch_unwind(|| p.skip("pinas-x::ci", "dig is not installed"))
            .expect_err("a skip under CI=true panics");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("SKIP pinas-x::ci: dig is not installed"),
            "{msg}"
        );
        assert!(msg.contains("CI=true"), "{msg}");
        assert!(!log.exists(), "nothing recorded: {}", read(&log));
    }

    #[test]
    fn an_unwritable_log_fails_the_test() {
        let d = tempfile::tempdir().unwrap();
        let p = Protocol {
            ci: false,
            log: Some(d.path().join("no/such/dir/skips")),
        };
        assert!(std::panic::catch_unwind(|| p.skip("pinas-x::lost", "x")).is_err());
    }

    #[test]
    fn missing_tools_are_all_named() {
        assert_eq!(require_tools(&["sh"]), Ok(()));
        let e = require_tools(&["sh", "pinas-no-such-tool-1", "pinas-no-such-tool-2"]).unwrap_err();
        assert!(
            e.reason()
                .starts_with("pinas-no-such-tool-1, pinas-no-such-tool-2 are not installed"),
            "{e}"
        );
        let e = require_tools(&["pinas-no-such-tool-1"]).unwrap_err();
        assert!(
            e.reason()
                .starts_with("pinas-no-such-tool-1 is not installed"),
            "{e}"
        );
    }

    #[test]
    fn which_finds_only_executables() {
        assert!(which("sh").is_some());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("data.txt"), "x").unwrap();
        assert!(!is_executable(&d.path().join("data.txt")));
        assert!(!is_executable(d.path()));
    }

    #[test]
    fn root_check_matches_the_effective_uid() {
        let root = nix::unistd::geteuid().is_root();
        match require_root("testing") {
            Ok(()) => assert!(root),
            Err(s) => {
                assert!(!root);
                assert_eq!(s.reason(), "needs root: testing");
            }
        }
    }

    #[test]
    fn a_missing_directory_is_a_skip() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(require_dir(d.path(), "data"), Ok(d.path().to_path_buf()));
        let e = require_dir(&d.path().join("gone"), "no blocklists").unwrap_err();
        assert!(
            e.reason().starts_with("no blocklists: no directory /"),
            "{e}"
        );
    }

    #[test]
    fn the_test_name_is_the_thread_name() {
        assert_eq!(
            test_name("pinas-testkit", "fallback"),
            "pinas-testkit::tests::the_test_name_is_the_thread_name"
        );
        let other = std::thread::Builder::new()
            .name("main".into())
            .spawn(|| test_name("k", "m"))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(other, "k::m");
    }

    // The macro in a helper returning (): Ok yields the value, Err returns early.
    fn reach(check: Result<u32, Skip>, p: &Protocol, reached: &mut Option<u32>) {
        let v = require!(check, p);
        *reached = Some(v);
    }

    #[test]
    fn the_macro_yields_on_ok() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("skips");
        let p = Protocol {
            ci: true,
            log: Some(log.clone()),
        };
        let mut reached = None;
        reach(Ok(7), &p, &mut reached);
        assert_eq!(reached, Some(7));
        assert!(!log.exists());
    }

    #[test]
    fn the_macro_reports_and_returns_on_a_skip() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("skips");
        let p = Protocol {
            ci: false,
            log: Some(log.clone()),
        };
        let mut reached = None;
        reach(Err(Skip::new("testing the macro")), &p, &mut reached);
        assert_eq!(reached, None);
        assert_eq!(
            read(&log),
            "pinas-testkit::tests::the_macro_reports_and_returns_on_a_skip: testing the macro\n"
        );
    }

    #[test]
    fn the_macro_fails_under_ci() {
        let p = Protocol {
            ci: true,
            log: None,
        };
        let mut reached = None;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reach(Err(Skip::new("testing the macro")), &p, &mut reached)
        }));
        assert!(r.is_err());
        assert_eq!(reached, None);
    }
}
