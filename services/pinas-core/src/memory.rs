//! Handing the pages a long-running role used only while starting back to the kernel.
//!
//! A role's resident set is mostly file-backed: the pages of the `pinas` binary (one
//! program for every role) and of the C library. Starting up runs much code that never
//! runs again (argument and configuration parsing, database migrations, building the
//! router), and the kernel maps the neighbours of every page it faults in as well
//! (fault-around, 64 KiB), so after start-up the resident set is about half start-up
//! code. The kernel would reclaim those pages under memory pressure; [`release_file_pages`]
//! asks it to do so at once, so that the resident set shown by `ps`, `top` and the
//! benchmarks is the role's steady state. Pages still in use come back on their next
//! touch; pages another process also maps (another role's) are left where they are.

use std::io;

/// Advises `MADV_PAGEOUT` (Linux 5.4 and later, madvise(2)) over every read-only file
/// mapping of this process (code, read-only data; never a writable mapping, whose
/// changed pages are the process's own). Returns the bytes of the mappings advised.
/// Blocking (reads `/proc/self/maps`).
///
/// # Errors
/// When `/proc/self/maps` cannot be read. A kernel without `MADV_PAGEOUT` (EINVAL) or a
/// refused mapping is skipped, not an error: this is an optimisation.
pub fn release_file_pages() -> io::Result<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0u64;
    for (start, end) in read_only_file_mappings(&maps) {
        let len = end - start;
        // SAFETY: the range is one of this process's own mappings, as the kernel listed
        // it; MADV_PAGEOUT changes no contents, only where the pages are.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if r == 0 {
            advised += len as u64;
        }
    }
    Ok(advised)
}

/// The `(start, end)` addresses of the read-only mappings of files in `maps` (the format
/// of `/proc/<pid>/maps`, proc(5)).
fn read_only_file_mappings(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if !path.starts_with('/') || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = usize::from_str_radix(a, 16).ok()?;
            let end = usize::from_str_radix(b, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_file_mappings_are_taken() {
        let maps = "\
55f170092000-55f170487000 r--p 00000000 fe:00 5393810    /usr/bin/pinas
55f170487000-55f170da8000 r-xp 003f4000 fe:00 5393810    /usr/bin/pinas
55f170e45000-55f170e4e000 rw-p 00db0000 fe:00 5393810    /usr/bin/pinas
55f171000000-55f171100000 rw-p 00000000 00:00 0          [heap]
7f0000000000-7f0000001000 r--p 00000000 00:00 0
7ffd00000000-7ffd00021000 r-xp 00000000 00:00 0          [vdso]
7f1000000000-7f1000002000 r--s 00000000 fe:00 77         /storage/x with space.db
";
        assert_eq!(
            read_only_file_mappings(maps),
            [
                (0x55f170092000, 0x55f170487000),
                (0x55f170487000, 0x55f170da8000),
                (0x7f1000000000, 0x7f1000002000),
            ]
        );
    }

    fn rss_file_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn releasing_lowers_the_file_backed_resident_set_and_code_still_runs() {
        let before = rss_file_kib();
        let advised = release_file_pages().unwrap();
        let after = rss_file_kib();
        assert!(advised > 0, "this test binary has file mappings");
        // The test binary's own pages are mapped by this process alone.
        assert!(
            after < before,
            "RssFile {before} kB before, {after} kB after"
        );
        // The code paged out comes back when it runs again.
        assert_eq!(read_only_file_mappings("").len(), 0);
        assert!(rss_file_kib() > 0);
    }
}
