//! Everything that touches processes: spawning into a process group (and a
//! cgroup) with a parent-death signal and handed-over sockets, signalling
//! groups, reaping, RSS, containment of what instances leave behind, the
//! guardian that outlives the daemon, and the daemon's own subreaper and
//! leftover-process duties.

pub mod cgroup;
pub mod contain;
pub mod cpu;
pub mod guardian;
pub mod reaper;
pub mod rss;
pub mod setup;
pub mod signal;
pub mod sockets;
pub mod spawn;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Makes the daemon a child subreaper: orphaned descendants of its instances are
/// reparented to it (and reaped by [`reaper`]) instead of to PID 1, which on these
/// machines does not reap.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Whether this process has a single thread (`/proc/self/status`), as it must
/// to fork anything but an exec.
pub fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|l| l.strip_prefix("Threads:").is_some_and(|n| n.trim() == "1"))
    })
}

/// Drops the daemon's cold code, read-only data and free heap pages from its
/// resident set.
///
/// A daemon's start-up runs a lot of code once (argument parsing, config, TLS and
/// gRPC setup, the dynamic loader's relocation pass) that its steady state never
/// touches again, and by default a page fault in a file mapping also maps the
/// cached pages around it (fault-around, 64 KiB). Together they leave most of the
/// binary and of libc resident for good. Here every read-only file mapping whose
/// pages are all the file's own (no anonymous, copied-on-write page: that rules
/// out the relocated RELRO data, which must never be dropped) is marked
/// `MADV_RANDOM` (no read-ahead) and unmapped with `MADV_DONTNEED`; what the
/// steady state uses comes back from the page cache, unchanged. Then glibc is
/// asked to give back the free pages inside its heap: a burst of start-ups frees
/// many small blocks that would otherwise stay resident between live ones.
/// Best effort: on any error nothing changes.
pub fn trim_resident_memory() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        for (start, end) in clean_read_only_file_mappings(&smaps) {
            let addr = start as *mut libc::c_void;
            // SAFETY: advice on our own read-only file mappings that hold no
            // private copy of any page: unmapped pages fault back in unchanged
            // from the file.
            unsafe {
                libc::madvise(addr, end - start, libc::MADV_RANDOM);
                libc::madvise(addr, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Address ranges of the mappings in `smaps` (the text of `/proc/PID/smaps`) that
/// map a file read-only and privately and hold no anonymous page.
fn clean_read_only_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The mapping whose fields are being read: its range, if it is a candidate.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some((start, end)) = first.split_once('-') {
            // A mapping header: `start-end perms offset dev inode path`.
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let range = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            );
            current = match range {
                (Ok(start), Ok(end))
                    if (perms == "r-xp" || perms == "r--p") && path.starts_with('/') =>
                {
                    Some((start, end))
                }
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    found.push(range);
                }
            }
        }
    }
    found
}

/// Pids whose parent is this process: what is left after every instance stopped is
/// an orphan that was reparented to us. Scans `/proc` (only done at shutdown).
pub fn own_children() -> Vec<Pid> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .map(Pid::from_raw)
        .collect()
}

/// The parent pid from `/proc/PID/stat` (the field after the parenthesised name,
/// which may itself contain spaces and parentheses).
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// SIGKILLs every remaining child of the daemon and its process group.
pub fn kill_leftovers() -> usize {
    let children = own_children();
    for &pid in &children {
        let _ = signal::signal_group(pid, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    children.len()
}

#[cfg(test)]
mod tests {
    use super::clean_read_only_file_mappings;

    #[test]
    fn only_clean_read_only_file_mappings_are_trimmed() {
        let smaps = "\
1000-3000 r--p 00000000 08:01 12 /usr/bin/infantd
Rss:                   8 kB
Anonymous:             0 kB
3000-9000 r-xp 00002000 08:01 12 /usr/bin/infantd
Anonymous:             0 kB
9000-a000 r--p 00008000 08:01 12 /usr/bin/infantd
Anonymous:             4 kB
a000-b000 rw-p 00009000 08:01 12 /usr/bin/infantd
Anonymous:             0 kB
c000-d000 r--p 00000000 00:00 0 [vvar]
Anonymous:             0 kB
e000-f000 r--p 00000000 00:00 0
Anonymous:             0 kB
";
        assert_eq!(
            clean_read_only_file_mappings(smaps),
            vec![(0x1000, 0x3000), (0x3000, 0x9000)]
        );
    }
}
