//! Cutting a pipe's bytes into lines: split on `\n`, bytes passed through as
//! they are (invalid UTF-8 and binary output included), and a line longer than
//! [`MAX_LINE`] cut there and marked, so that one runaway line cannot hold
//! memory or hide everything after it.

/// The longest line kept whole, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// What ends a line that was cut at [`MAX_LINE`].
pub const CUT_MARK: &[u8] = b" [cut: line over 64 KiB]";

/// Splits a byte stream into lines across reads.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
    /// The current line was cut: drop its bytes up to the next `\n`.
    cutting: bool,
}

impl LineSplitter {
    /// Appends the lines `input` completes to `out`, each ending in `\n`;
    /// returns how many.
    ///
    /// Lines are found one by one only where one might be too long (the line
    /// in progress, or a run of lines longer than [`MAX_LINE`]); the rest of
    /// `input`, up to its last `\n`, is counted and copied in one go.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let mut lines = 0;
        let mut rest = input;
        if !self.partial.is_empty() || self.cutting {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.hold(rest, out, &mut lines);
                return lines;
            };
            self.line(&rest[..end], out, &mut lines);
            rest = &rest[end + 1..];
        }
        match memchr::memrchr(b'\n', rest) {
            // No line in there can be longer than the whole.
            Some(last) if last <= MAX_LINE => {
                let whole = &rest[..=last];
                lines += memchr::memchr_iter(b'\n', whole).count();
                out.extend_from_slice(whole);
                rest = &rest[last + 1..];
            }
            Some(_) => {
                while let Some(end) = memchr::memchr(b'\n', rest) {
                    self.line(&rest[..end], out, &mut lines);
                    rest = &rest[end + 1..];
                }
            }
            None => {}
        }
        self.hold(rest, out, &mut lines);
        lines
    }

    /// A line's last `segment` (before its `\n`) has come.
    fn line(&mut self, segment: &[u8], out: &mut Vec<u8>, lines: &mut usize) {
        if self.cutting {
            // The end of a line already written out cut.
            self.cutting = false;
            return;
        }
        *lines += 1;
        if self.partial.len() + segment.len() > MAX_LINE {
            let room = MAX_LINE - self.partial.len();
            self.emit_cut(&segment[..room], out);
        } else {
            out.extend_from_slice(&self.partial);
            out.extend_from_slice(segment);
            out.push(b'\n');
            self.partial.clear();
        }
    }

    /// `rest`, with no `\n`, starts or continues the line in progress.
    fn hold(&mut self, rest: &[u8], out: &mut Vec<u8>, lines: &mut usize) {
        if rest.is_empty() || self.cutting {
            return;
        }
        if self.partial.len() + rest.len() > MAX_LINE {
            let room = MAX_LINE - self.partial.len();
            self.emit_cut(&rest[..room], out);
            *lines += 1;
            self.cutting = true;
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// The stream ended: a last line without its `\n` is completed; returns
    /// how many lines that added to `out` (0 or 1).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        self.cutting = false;
        if self.partial.is_empty() {
            return 0;
        }
        out.extend_from_slice(&self.partial);
        out.push(b'\n');
        self.partial.clear();
        1
    }

    fn emit_cut(&mut self, end: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.partial);
        out.extend_from_slice(end);
        out.extend_from_slice(CUT_MARK);
        out.push(b'\n');
        self.partial.clear();
    }
}

/// The lines of `data` (every one ending in `\n`), without their `\n`.
pub fn each_line(data: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&b| b == b'\n')
        .filter(move |_| !data.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest read, as the pipe reader does.
    const READ: usize = 64 * 1024;

    fn split(reads: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        let mut lines = 0;
        for read in reads {
            lines += splitter.feed(read, &mut out);
        }
        lines += splitter.finish(&mut out);
        (out, lines)
    }

    #[test]
    fn lines_join_across_reads_and_the_last_one_is_completed() {
        let (out, lines) = split(&[b"one\ntw", b"o\n", b"\nthree"]);
        assert_eq!(out, b"one\ntwo\n\nthree\n");
        assert_eq!(lines, 4);
    }

    #[test]
    fn binary_bytes_pass_unchanged() {
        let (out, lines) = split(&[b"\xff\xfe\x00bin\n", b"\x80\n"]);
        assert_eq!(out, b"\xff\xfe\x00bin\n\x80\n");
        assert_eq!(lines, 2);
    }

    #[test]
    fn a_long_line_is_cut_and_marked_and_what_follows_is_kept() {
        let long = vec![b'x'; MAX_LINE + 10_000];
        let (out, lines) = split(&[&long[..40_000], &long[40_000..], b"\nnext\n"]);
        assert_eq!(lines, 2);
        let mut expected = vec![b'x'; MAX_LINE];
        expected.extend_from_slice(CUT_MARK);
        expected.extend_from_slice(b"\nnext\n");
        assert_eq!(out, expected);
        // Cut within one read too.
        let (out, lines) = split(&[&[long.as_slice(), b"\nnext\n"].concat()]);
        assert_eq!((out, lines), (expected, 2));
    }

    /// What `feed` and `finish` must give for `input`, line by line.
    fn expected(input: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut lines = 0;
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        if input.is_empty() {
            return (out, 0);
        }
        for line in body.split(|&b| b == b'\n') {
            if line.len() > MAX_LINE {
                out.extend_from_slice(&line[..MAX_LINE]);
                out.extend_from_slice(CUT_MARK);
            } else {
                out.extend_from_slice(line);
            }
            out.push(b'\n');
            lines += 1;
        }
        (out, lines)
    }

    #[test]
    fn any_split_of_any_lines_gives_the_same_lines() {
        // Lines short and long (around MAX_LINE), cut into reads anywhere.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for _ in 0..200 {
            let mut input = Vec::new();
            for _ in 0..next(12) {
                let len = match next(4) {
                    0 => next(3),
                    1 => next(200),
                    _ => MAX_LINE - 2 + next(5),
                };
                input.extend(std::iter::repeat_n(b'a' + next(26) as u8, len));
                input.push(b'\n');
            }
            if next(2) == 0 {
                input.extend(std::iter::repeat_n(b'z', next(MAX_LINE + 3)));
            }
            let mut reads = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let take = 1 + next(rest.len().min(READ));
                reads.push(&rest[..take]);
                rest = &rest[take..];
            }
            assert_eq!(split(&reads), expected(&input));
        }
    }

    #[test]
    fn each_line_gives_lines_without_newlines() {
        let lines: Vec<&[u8]> = each_line(b"a\n\nb\n").collect();
        assert_eq!(lines, vec![&b"a"[..], b"", b"b"]);
        assert_eq!(each_line(b"").count(), 0);
    }
}
