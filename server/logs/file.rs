//! One log file (`DIR/NAME.out.log` or `DIR/NAME.err.log`): appends whole lines,
//! rotates by size, and survives faults.
//!
//! Rotation happens between two lines, in the one thread that writes the file:
//! the oldest, `NAME.out.log.N`, is removed, then `.(N-1)` → `.N`, …, `NAME.out.log` →
//! `.1`, then a new `NAME.out.log`. No line is split across files, written
//! twice or lost by it, and nobody waits for it: what arrives meanwhile queues
//! in memory.
//!
//! A write or an open that fails (disk full, the folder removed, no permission)
//! drops what was to be written, counts it, and is reported once; the file is
//! opened afresh at most once a second until it works again. A file deleted or
//! moved under the daemon (the folder removed, an outside log rotator) is noticed
//! within a second and recreated.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often an open file is checked to still be the one at its path, and how
/// often a failing file is retried.
const RECHECK: Duration = Duration::from_secs(1);

/// Sizes and modes that shape a log file.
#[derive(Clone, Copy, Debug)]
pub struct FileRules {
    /// Rotate before the file would grow past this many bytes.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Files 0600 and the folder 0700 (a user's daemon), else 0640 and 0750.
    pub private: bool,
}

/// What one batch did: bytes that reached the file and bytes dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub written: u64,
    /// Bytes dropped: always the batch's last ones, whole lines.
    pub dropped: u64,
}

/// A log file and what the daemon knows about it.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    program: String,
    file: Option<File>,
    /// Its size as far as this writer knows.
    size: u64,
    /// (device, inode) of the open file: the path must still name it.
    identity: (u64, u64),
    /// When the path was last checked, or a failed open last tried.
    checked: Instant,
    /// The problem being reported, while it lasts.
    fault: Option<String>,
}

impl LogFile {
    /// The file at `path`, for `program`'s output; opened on the first write.
    pub fn new(path: PathBuf, program: &str) -> LogFile {
        LogFile {
            path,
            program: program.to_owned(),
            file: None,
            size: 0,
            identity: (0, 0),
            checked: Instant::now(),
            fault: None,
        }
    }

    /// Appends `batch`, whole lines each ending in `\n`, rotating as needed.
    pub fn write(&mut self, batch: &[u8], rules: FileRules) -> Written {
        let mut done = Written::default();
        let mut rest = batch;
        if self.file.is_some() && self.checked.elapsed() >= RECHECK {
            self.checked = Instant::now();
            if !self.still_at_path() {
                self.file = None;
            }
        }
        while !rest.is_empty() {
            if self.file.is_none() {
                // A failing file is retried once a second, not once a batch.
                if self.fault.is_some() && self.checked.elapsed() < RECHECK {
                    break;
                }
                self.checked = Instant::now();
                if let Err(e) = self.open(rules) {
                    self.fail(&format!("cannot open it: {e}"));
                    break;
                }
            }
            let room = rules.max_size.saturating_sub(self.size);
            let take = if rest.len() as u64 <= room {
                rest.len()
            } else {
                // Whole lines that fit; a file holds at least one line, however long.
                match memchr::memrchr(b'\n', &rest[..room as usize]) {
                    Some(end) => end + 1,
                    None if self.size == 0 => {
                        memchr::memchr(b'\n', rest).map_or(rest.len(), |e| e + 1)
                    }
                    None => 0,
                }
            };
            if take == 0 {
                if let Err(e) = self.rotate(rules) {
                    self.fail(&format!("cannot rotate it: {e}"));
                    break;
                }
                continue;
            }
            let Some(file) = self.file.as_mut() else {
                break;
            };
            if let Err(e) = file.write_all(&rest[..take]) {
                // What part of it went out is unknown: count it all as dropped.
                self.file = None;
                self.fail(&e.to_string());
                break;
            }
            self.size += take as u64;
            done.written += take as u64;
            rest = &rest[take..];
        }
        done.dropped = rest.len() as u64;
        if done.dropped == 0 && done.written > 0 {
            if let Some(fault) = self.fault.take() {
                tracing::info!(
                    program = %self.program,
                    "writing {} again (after: {fault})",
                    self.path.display()
                );
            }
        }
        done
    }

    /// Whether this file has a problem (reported once) right now.
    #[cfg(test)]
    pub fn faulty(&self) -> bool {
        self.fault.is_some()
    }

    fn fail(&mut self, reason: &str) {
        if self.fault.is_none() {
            tracing::warn!(
                program = %self.program,
                "cannot write {}: {reason}; dropping the program's output until it can (the \
                 program runs on; dropped bytes show in `infantctl status` and `workers`)",
                self.path.display()
            );
            self.fault = Some(reason.to_owned());
        }
    }

    fn open(&mut self, rules: FileRules) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(if rules.private { 0o700 } else { 0o750 })
                .create(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(if rules.private { 0o600 } else { 0o640 })
            .open(&self.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        self.identity = (meta.dev(), meta.ino());
        self.file = Some(file);
        Ok(())
    }

    fn still_at_path(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity)
    }

    fn rotate(&mut self, rules: FileRules) -> std::io::Result<()> {
        self.file = None;
        if rules.keep == 0 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            // The oldest goes first, so that no rename replaces a file: ext4
            // flushes the data of a file renamed over another one at once, in
            // this thread, where it would stall the writer.
            ignore_missing(std::fs::remove_file(rotated(&self.path, rules.keep)))?;
            for n in (1..rules.keep).rev() {
                ignore_missing(std::fs::rename(
                    rotated(&self.path, n),
                    rotated(&self.path, n + 1),
                ))?;
            }
            ignore_missing(std::fs::rename(&self.path, rotated(&self.path, 1)))?;
        }
        self.open(rules)
    }
}

/// `PATH.n`.
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: FileRules = FileRules {
        max_size: 100,
        keep: 2,
        private: true,
    };

    #[test]
    fn rotation_keeps_whole_lines_and_exactly_keep_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs").join("p.out.log");
        let mut file = LogFile::new(path.clone(), "p");
        let mut all = Vec::new();
        for i in 0..40 {
            let line = format!("line {i:04} .........\n"); // 21 bytes
            all.extend_from_slice(line.as_bytes());
            let done = file.write(line.as_bytes(), RULES);
            assert_eq!(done.dropped, 0);
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        let one = read(&rotated(&path, 1));
        let two = read(&rotated(&path, 2));
        assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
        for text in [&current, &one, &two] {
            assert!(text.len() <= 100 && text.ends_with('\n'), "{text:?}");
        }
        // The newest lines, in order, none twice, none missing in between.
        let kept = format!("{two}{one}{current}");
        let all = String::from_utf8(all).expect("utf8");
        assert!(all.ends_with(&kept), "{kept}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_removed_folder_is_a_fault_reported_and_recovered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("logs");
        let mut file = LogFile::new(folder.join("p.err.log"), "p");
        assert_eq!(file.write(b"a\n", RULES).written, 2);
        // A file in the folder's place: nothing can be created there.
        std::fs::remove_dir_all(&folder).expect("rm");
        std::fs::write(&folder, b"not a folder").expect("block");
        file.checked = Instant::now() - RECHECK;
        let done = file.write(b"b\n", RULES);
        assert_eq!(
            done,
            Written {
                written: 0,
                dropped: 2
            }
        );
        assert!(file.faulty());
        std::fs::remove_file(&folder).expect("unblock");
        file.checked = Instant::now() - RECHECK;
        assert_eq!(file.write(b"c\n", RULES).written, 2);
        assert!(!file.faulty());
        assert_eq!(
            std::fs::read(folder.join("p.err.log")).expect("read"),
            b"c\n"
        );
    }
}
