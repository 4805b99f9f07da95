//! How `infantctl` prints what the daemon answered.
//!
//! Two forms of everything: for people, aligned tables and one-line summaries in
//! human units; with `--json`, one JSON object per line, whose keys (`rss_bytes`,
//! `uptime_ms`, `kind` as a lowercase name) are the stable interface for scripts.
//! On a terminal, statuses are coloured (see [`Output::colour`]).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use infant::names::{event_kind_name, instance_status_name, kind_name, status_name};
use infant::proto::{
    Event, EventKind, InstanceStatus, LogLine, LogStream, PlanEntry, ProgramInfo, WorkerInfo,
};
use serde_json::{json, Map, Value};

/// Where results go, and in which form.
pub struct Output {
    /// `--json`: one object per line.
    pub json: bool,
    /// Colour statuses (a terminal without `NO_COLOR`, never with `--json`).
    pub colour: bool,
    /// Print the steps of long operations (a terminal, or `--json`).
    pub progress: bool,
    out: Box<dyn Write>,
}

impl Output {
    /// Prints to `out`; JSON lines if `json`.
    pub fn new(json: bool, out: Box<dyn Write>) -> Output {
        Output {
            json,
            colour: false,
            progress: json,
            out,
        }
    }

    /// Colours statuses if `on` (and not `--json`).
    pub fn colour(mut self, on: bool) -> Output {
        self.colour = on && !self.json;
        self
    }

    /// Shows the steps of long operations if `on` (always with `--json`).
    pub fn progress(mut self, on: bool) -> Output {
        self.progress = on || self.json;
        self
    }

    /// Bytes as they are (a completion script, a man page).
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.flush()
    }

    /// One line of text.
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        // Followed events must show up as they happen, even through a pipe.
        self.out.flush()
    }

    /// One JSON object, on one line.
    pub fn object(&mut self, value: &Value) -> io::Result<()> {
        self.line(&value.to_string())
    }

    /// The program a command left behind (start, stop, restart, scale).
    pub fn program(&mut self, program: &ProgramInfo) -> io::Result<()> {
        if self.json {
            self.object(&program_json(program))
        } else {
            let line = program_line(program);
            let line = match self.colour {
                // The status is the word after `NAME: `.
                true => colour_after(&line, program.name.len() + 2, status_name(program.status())),
                false => line,
            };
            self.line(&line)
        }
    }

    /// A reload's plan, as a table (one JSON object per entry with `--json`).
    pub fn plan(&mut self, plan: &[PlanEntry]) -> io::Result<()> {
        if self.json {
            return plan
                .iter()
                .try_for_each(|entry| self.object(&plan_entry_json(entry)));
        }
        let mut table = Table::new(&["NAME", "CHANGE", "FIELDS", "ACTION", "ERROR"]);
        for entry in plan {
            table.row(vec![
                entry.program.clone(),
                entry.change.clone(),
                dash_if_empty(entry.fields.join(",")),
                entry.action.clone(),
                dash_if_empty(single_line(&entry.error)),
            ]);
        }
        self.table(&table)
    }

    /// Every program, as the `status` table.
    pub fn programs(&mut self, programs: &[ProgramInfo]) -> io::Result<()> {
        if self.json {
            return programs
                .iter()
                .try_for_each(|program| self.object(&program_json(program)));
        }
        let mut table = Table::new(&[
            "NAME",
            "KIND",
            "STATUS",
            "RUNNING/COUNT",
            "RESTARTS",
            "LISTEN",
            "ERROR",
        ]);
        for program in programs {
            table.row(vec![
                program.name.clone(),
                kind_name(program.kind()).to_owned(),
                status_name(program.status()).to_owned(),
                format!("{}/{}", program.running, program.count),
                program.restarts.to_string(),
                dash_if_empty(program.listen.join(",")),
                dash_if_empty(program_trouble(program)),
            ]);
        }
        table.status_column(2);
        self.table(&table)
    }

    /// Running instances, as the `workers` table.
    pub fn workers(&mut self, workers: &[WorkerInfo]) -> io::Result<()> {
        if self.json {
            return workers
                .iter()
                .try_for_each(|worker| self.object(&worker_json(worker)));
        }
        self.table(&workers_table(workers))
    }

    /// One event, as it arrives.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        if self.json {
            self.object(&event_json(event))
        } else {
            self.line(&event_line(event))
        }
    }

    /// One line of program output: `TIME NAME/ID | line`, `!` instead of `|`
    /// for stderr (in red with colour). The line's bytes go out as written.
    pub fn log_line(&mut self, line: &LogLine) -> io::Result<()> {
        if self.json {
            return self.object(&log_line_json(line));
        }
        if line.missed != 0 {
            writeln!(self.out, "(missed {} lines)", line.missed)?;
        }
        let err = line.stream() == LogStream::Err;
        let mark = match (err, self.colour) {
            (false, _) => "|".to_owned(),
            (true, false) => "!".to_owned(),
            (true, true) => {
                let style = anstyle::AnsiColor::Red.on_default().bold();
                format!("{style}!{style:#}")
            }
        };
        write!(
            self.out,
            "{} {}/{} {mark} ",
            timestamp(line.time_ms),
            line.program,
            line.worker
        )?;
        self.out.write_all(&line.line)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    fn table(&mut self, table: &Table) -> io::Result<()> {
        let text = match self.colour {
            true => table.render_coloured(),
            false => table.render(),
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// The colour of a status word: green when all is well, yellow while it changes,
/// red when something failed, dim when at rest.
pub fn status_style(status: &str) -> anstyle::Style {
    use anstyle::{AnsiColor, Style};
    match status {
        "ok" => AnsiColor::Green.on_default(),
        "starting" | "stopping" => AnsiColor::Yellow.on_default(),
        "error" | "fatal" | "backoff" => AnsiColor::Red.on_default().bold(),
        _ => Style::new().dimmed(),
    }
}

/// `line` with the `status` word that starts at byte `at` coloured.
fn colour_after(line: &str, at: usize, status: &str) -> String {
    match line.get(at..) {
        Some(rest) if rest.starts_with(status) => {
            let style = status_style(status);
            format!(
                "{}{style}{status}{style:#}{}",
                &line[..at],
                &rest[status.len()..]
            )
        }
        _ => line.to_owned(),
    }
}

/// A table of left-aligned columns, two spaces apart.
pub struct Table {
    rows: Vec<Vec<String>>,
    status: Option<usize>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
            status: None,
        }
    }

    /// Appends a row; it should have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The column holding statuses, coloured by [`Table::render_coloured`].
    pub fn status_column(&mut self, column: usize) {
        self.status = Some(column);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// Like [`Table::render`], with the status column coloured; widths are
    /// those of the plain text, so columns still line up.
    pub fn render_coloured(&self) -> String {
        self.render_with(true)
    }

    fn render_with(&self, colour: bool) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for (index, row) in self.rows.iter().enumerate() {
            let mut line = String::new();
            for (column, (cell, width)) in row.iter().zip(&widths).enumerate() {
                // Padded by hand: a format width over u16::MAX panics, and a
                // program's error text can be that long.
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                if colour && index > 0 && self.status == Some(column) {
                    let style = status_style(cell);
                    let _ = write!(line, "{style}{cell}{style:#}");
                } else {
                    line.push_str(cell);
                }
                line.extend(std::iter::repeat_n(' ', pad));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// A program as `--json` prints it; a job's last outcome adds `exit_code` or
/// `exit_signal`.
pub fn program_json(program: &ProgramInfo) -> Value {
    let mut value = json!({
        "name": program.name,
        "kind": kind_name(program.kind()),
        "status": status_name(program.status()),
        "count": program.count,
        "running": program.running,
        "restarts": program.restarts,
        "error": program.error,
        "listen": program.listen,
    });
    if let Some(code) = program.exit_code {
        value["exit_code"] = json!(code);
    }
    if let Some(signal) = program.exit_signal {
        value["exit_signal"] = json!(signal);
    }
    if program.log_dropped_bytes != 0 {
        value["log_dropped_bytes"] = json!(program.log_dropped_bytes);
    }
    value
}

/// The ERROR cell of `status`: the program's error, and output it lost.
fn program_trouble(program: &ProgramInfo) -> String {
    let mut text = single_line(&program.error);
    if program.log_dropped_bytes != 0 {
        if !text.is_empty() {
            text.push_str("; ");
        }
        let _ = write!(
            text,
            "{} of output dropped (see the daemon's log)",
            bytes(program.log_dropped_bytes)
        );
    }
    text
}

/// A line of program output as `logs --json` prints it (`line` as text, invalid
/// UTF-8 replaced).
pub fn log_line_json(line: &LogLine) -> Value {
    let mut value = json!({
        "time": line.time_ms,
        "program": line.program,
        "worker": line.worker,
        "stream": if line.stream() == LogStream::Err { "err" } else { "out" },
        "line": String::from_utf8_lossy(&line.line),
    });
    if line.missed != 0 {
        value["missed"] = json!(line.missed);
    }
    value
}

/// The `workers` table; a `DROPPED` column (bytes of output lost) only when
/// some worker lost any.
pub fn workers_table(workers: &[WorkerInfo]) -> Table {
    let dropped = workers.iter().any(|w| w.log_dropped_bytes != 0);
    let mut headers = vec![
        "PROGRAM",
        "ID",
        "PID",
        "STATUS",
        "RESTARTS",
        "CONNECTIONS",
        "RSS",
        "CPU",
        "UPTIME",
    ];
    if dropped {
        headers.push("DROPPED");
    }
    let mut table = Table::new(&headers);
    for worker in workers {
        let mut row = vec![
            worker.program.clone(),
            worker.id.to_string(),
            worker.pid.to_string(),
            // A `ready = "notify"` instance's own STATUS= text, after ours.
            if worker.notify_status.is_empty() {
                instance_status_name(worker.status()).to_owned()
            } else {
                format!(
                    "{} ({})",
                    instance_status_name(worker.status()),
                    worker.notify_status
                )
            },
            worker.restarts.to_string(),
            // Only SDK workers report connections; 0 from a plain program would lie.
            if worker.attached {
                worker.connections.to_string()
            } else {
                "-".to_owned()
            },
            bytes(worker.rss_bytes),
            cpu_time(worker.cpu_ms),
            uptime(worker.uptime_ms),
        ];
        if dropped {
            row.push(bytes(worker.log_dropped_bytes));
        }
        table.row(row);
    }
    table.status_column(3);
    table
}

/// A worker as `--json` prints it.
pub fn worker_json(worker: &WorkerInfo) -> Value {
    let mut value = json!({
        "program": worker.program,
        "id": worker.id,
        "pid": worker.pid,
        "status": instance_status_name(worker.status()),
        "restarts": worker.restarts,
        "connections": worker.connections,
        "requests": worker.requests,
        "rss_bytes": worker.rss_bytes,
        "uptime_ms": worker.uptime_ms,
        "attached": worker.attached,
        "cpu_ms": worker.cpu_ms,
    });
    if !worker.notify_status.is_empty() {
        value["notify_status"] = json!(worker.notify_status);
    }
    if worker.log_dropped_bytes != 0 {
        value["log_dropped_bytes"] = json!(worker.log_dropped_bytes);
    }
    value
}

/// An event as `--json` prints it: the common fields, then the kind-specific ones
/// that are set (a field that belongs to the kind is printed even when zero: a
/// respawn with `delay_ms: 0` happened at once).
pub fn event_json(event: &Event) -> Value {
    let kind = event.kind();
    let mut object = Map::new();
    object.insert("seq".into(), event.seq.into());
    object.insert("time".into(), event.time_ms.into());
    object.insert("program".into(), event.program.clone().into());
    object.insert("worker".into(), event.worker.into());
    object.insert("pid".into(), event.pid.into());
    object.insert("kind".into(), event_kind_name(kind).into());
    if let Some(status) = event_status(event) {
        object.insert("status".into(), status.into());
    }
    if let Some(code) = event.code {
        object.insert("code".into(), code.into());
    }
    if let Some(signal) = event.signal {
        object.insert("signal".into(), signal.into());
    }
    if !event.reason.is_empty() {
        object.insert("reason".into(), event.reason.clone().into());
    }
    if !event.payload.is_empty() || kind == EventKind::Message {
        object.insert("payload".into(), payload_text(&event.payload).into());
    }
    if event.connections != 0 || kind == EventKind::Recycle {
        object.insert("connections".into(), event.connections.into());
    }
    if event.count != 0 || kind == EventKind::Scale {
        object.insert("count".into(), event.count.into());
    }
    if event.delay_ms != 0 || kind == EventKind::Respawn {
        object.insert("delay_ms".into(), event.delay_ms.into());
    }
    if event.missed != 0 {
        object.insert("missed".into(), event.missed.into());
    }
    if !event.plan.is_empty() || kind == EventKind::Reload {
        let plan: Vec<Value> = event.plan.iter().map(plan_entry_json).collect();
        object.insert("plan".into(), plan.into());
    }
    Value::Object(object)
}

/// One entry of a reload's plan: `program`, `change`, `fields`, `action`, and
/// `error` when applying it failed.
pub fn plan_entry_json(entry: &PlanEntry) -> Value {
    let mut object = Map::new();
    object.insert("program".into(), entry.program.clone().into());
    object.insert("change".into(), entry.change.clone().into());
    object.insert("fields".into(), entry.fields.clone().into());
    object.insert("action".into(), entry.action.clone().into());
    if !entry.error.is_empty() {
        object.insert("error".into(), entry.error.clone().into());
    }
    Value::Object(object)
}

/// `web: ok (cluster, 4/4 running, 0 restarts) on tcp://127.0.0.1:8080`
pub fn program_line(program: &ProgramInfo) -> String {
    let mut line = format!(
        "{}: {} ({}, {}/{} running, {} restart{})",
        program.name,
        status_name(program.status()),
        kind_name(program.kind()),
        program.running,
        program.count,
        program.restarts,
        if program.restarts == 1 { "" } else { "s" },
    );
    if !program.listen.is_empty() {
        let _ = write!(line, " on {}", program.listen.join(", "));
    }
    // A job's last run: how it ended, which a script checking on it wants (a
    // failed run's error says it already).
    match (program.exit_code, program.exit_signal) {
        _ if !program.error.is_empty() => {}
        (_, Some(signal)) => {
            let _ = write!(line, ", last run killed by {}", signal_name(signal));
        }
        (Some(code), None) => {
            let _ = write!(line, ", last run exited with code {code}");
        }
        (None, None) => {}
    }
    if !program.error.is_empty() {
        let _ = write!(line, ": {}", single_line(&program.error));
    }
    line
}

/// `2024-05-01T12:00:00.123Z  web/2  exit      pid=4242 code=1 reason="crashed"`
pub fn event_line(event: &Event) -> String {
    let kind = event.kind();
    let who = if event.worker == 0 {
        event.program.clone()
    } else {
        format!("{}/{}", event.program, event.worker)
    };
    let mut details = Vec::new();
    if event.missed != 0 {
        details.push(format!("(missed {} events)", event.missed));
    }
    if event.pid != 0 {
        details.push(format!("pid={}", event.pid));
    }
    if let Some(status) = event_status(event) {
        details.push(format!("status={status}"));
    }
    if let Some(code) = event.code {
        details.push(format!("code={code}"));
    }
    if let Some(signal) = event.signal {
        details.push(format!("signal={}", signal_name(signal)));
    }
    if event.connections != 0 || kind == EventKind::Recycle {
        details.push(format!("connections={}", event.connections));
    }
    if event.count != 0 || kind == EventKind::Scale {
        details.push(format!("count={}", event.count));
    }
    if event.delay_ms != 0 || kind == EventKind::Respawn {
        details.push(format!(
            "delay={}",
            humantime::format_duration(Duration::from_millis(event.delay_ms))
        ));
    }
    if !event.reason.is_empty() {
        details.push(format!("reason={:?}", event.reason));
    }
    if !event.payload.is_empty() || kind == EventKind::Message {
        details.push(format!("payload={:?}", payload_text(&event.payload)));
    }
    let line = format!(
        "{}  {who:<16}  {:<9} {}",
        timestamp(event.time_ms),
        event_kind_name(kind),
        details.join(" ")
    );
    line.trim_end().to_owned()
}

/// The new status a `status` event reports: the instance's if it is about one,
/// else the program's.
fn event_status(event: &Event) -> Option<&'static str> {
    if event.kind() != EventKind::Status {
        return None;
    }
    if event.instance_status() != InstanceStatus::Unspecified {
        Some(instance_status_name(event.instance_status()))
    } else {
        Some(status_name(event.program_status()))
    }
}

/// Payloads are bytes; the convention is UTF-8 JSON, and anything else is shown
/// with replacement characters rather than refused.
fn payload_text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// `9 (SIGKILL)`, or just the number for one this system does not know.
fn signal_name(number: i32) -> String {
    match nix::sys::signal::Signal::try_from(number) {
        Ok(signal) => format!("{number}({})", signal.as_str()),
        Err(_) => number.to_string(),
    }
}

/// RFC 3339 in UTC, to the millisecond. A time outside what RFC 3339 can show
/// (before 1970, after 9999) is printed as the raw number rather than trusted to
/// the formatter.
fn timestamp(time_ms: i64) -> String {
    const YEAR_10000_MS: i64 = 253_402_300_800_000;
    if !(0..YEAR_10000_MS).contains(&time_ms) {
        return time_ms.to_string();
    }
    match UNIX_EPOCH.checked_add(Duration::from_millis(time_ms.unsigned_abs())) {
        Some(time) => humantime::format_rfc3339_millis(time).to_string(),
        None => time_ms.to_string(),
    }
}

/// `512B`, `4.0KiB`, `12.5MiB`, `1.2GiB`; `-` when unknown (0: not read).
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count == 0 {
        return "-".to_owned();
    }
    if count < 1024 {
        return format!("{count}B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// CPU time as `ps` shows it: `0:00.42`, `12:03.10` (minutes:seconds).
pub fn cpu_time(ms: u64) -> String {
    let (minutes, seconds, hundredths) = (ms / 60_000, ms / 1000 % 60, ms % 1000 / 10);
    format!("{minutes}:{seconds:02}.{hundredths:02}")
}

/// `850ms`, `42s`, `3m12s`, `5h07m`, `2d03h`: the two largest units, like `ps`.
pub fn uptime(ms: u64) -> String {
    let seconds = ms / 1000;
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds == 0 {
        format!("{ms}ms")
    } else if minutes == 0 {
        format!("{seconds}s")
    } else if hours == 0 {
        format!("{minutes}m{:02}s", seconds % 60)
    } else if days == 0 {
        format!("{hours}h{:02}m", minutes % 60)
    } else {
        format!("{days}d{:02}h", hours % 24)
    }
}

/// A daemon's error text inside a table cell or summary must not break the line.
fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dash_if_empty(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infant::proto::{ProgramKind, ProgramStatus};

    #[test]
    fn a_cell_wider_than_a_format_width_does_not_panic() {
        let mut table = Table::new(&["NAME", "ERROR"]);
        let long = "e".repeat(100_000);
        table.row(vec!["web".into(), long.clone()]);
        table.row(vec![long.clone(), "x".into()]);
        let text = table.render();
        assert!(text.contains(&long));
        let widths: Vec<usize> = text.lines().map(|l| l.find("x").unwrap_or(0)).collect();
        assert_eq!(widths[2], 100_002, "the second column is aligned");
    }

    #[test]
    fn tables_align_without_trailing_spaces() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec!["web-frontend".into(), "ok".into()]);
        table.row(vec!["db".into(), "starting".into()]);
        assert_eq!(
            table.render(),
            "NAME          STATUS\nweb-frontend  ok\ndb            starting\n"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(0), "-");
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(4096), "4.0KiB");
        assert_eq!(bytes(13_107_200), "12.5MiB");
        assert_eq!(bytes(u64::MAX), "16777216.0TiB");
        assert_eq!(uptime(850), "850ms");
        assert_eq!(uptime(42_000), "42s");
        assert_eq!(uptime(192_000), "3m12s");
        assert_eq!(uptime(5 * 3_600_000 + 7 * 60_000), "5h07m");
        assert_eq!(uptime(2 * 86_400_000 + 3 * 3_600_000), "2d03h");
        assert_eq!(uptime(u64::MAX), "213503982334d14h");
    }

    #[test]
    fn coloured_tables_line_up_like_plain_ones() {
        let mut table = Table::new(&["NAME", "STATUS", "PID"]);
        table.row(vec!["web".into(), "ok".into(), "1".into()]);
        table.row(vec!["db".into(), "starting".into(), "2".into()]);
        table.status_column(1);
        let plain = table.render();
        let coloured = table.render_coloured();
        assert!(!plain.contains('\u{1b}'));
        assert!(coloured.contains("\u{1b}["), "{coloured:?}");
        // Without the escapes, the same text.
        let mut stripped = String::new();
        let mut in_escape = false;
        for c in coloured.chars() {
            match c {
                '\u{1b}' => in_escape = true,
                'm' if in_escape => in_escape = false,
                _ if in_escape => {}
                _ => stripped.push(c),
            }
        }
        assert_eq!(stripped, plain);
        let line = colour_after("web: ok (cluster)", 5, "ok");
        assert!(
            line.starts_with("web: \u{1b}[") && line.ends_with(" (cluster)"),
            "{line:?}"
        );
    }

    #[test]
    fn timestamps_never_panic() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(-1), "-1");
        assert_eq!(timestamp(i64::MAX), i64::MAX.to_string());
        assert_eq!(timestamp(i64::MIN), i64::MIN.to_string());
    }

    fn program() -> ProgramInfo {
        ProgramInfo {
            name: "web".into(),
            kind: ProgramKind::Cluster.into(),
            status: ProgramStatus::Ok.into(),
            count: 4,
            running: 4,
            restarts: 1,
            error: "worker 2 exited:\ncode 1".into(),
            listen: vec!["tcp://127.0.0.1:8080".into()],
            command: vec!["node".into()],
            enhanced: false,
            ..ProgramInfo::default()
        }
    }

    #[test]
    fn programs_print_one_line() {
        assert_eq!(
            program_line(&program()),
            "web: ok (cluster, 4/4 running, 1 restart) on tcp://127.0.0.1:8080: worker 2 exited: code 1"
        );
        let job = ProgramInfo {
            name: "migrate".into(),
            kind: ProgramKind::Once as i32,
            status: ProgramStatus::Error as i32,
            count: 1,
            exit_code: Some(3),
            error: "job failed (run 1): exited with code 3".into(),
            ..ProgramInfo::default()
        };
        assert_eq!(
            program_line(&job),
            "migrate: error (once, 0/1 running, 0 restarts): job failed (run 1): exited with code 3"
        );
        let done = ProgramInfo {
            status: ProgramStatus::Ready as i32,
            exit_code: Some(0),
            error: String::new(),
            ..job.clone()
        };
        assert_eq!(
            program_line(&done),
            "migrate: ready (once, 0/1 running, 0 restarts), last run exited with code 0"
        );
        let killed = ProgramInfo {
            exit_signal: Some(9),
            ..done
        };
        assert!(
            program_line(&killed).contains("last run killed by 9(SIGKILL)"),
            "{}",
            program_line(&killed)
        );
        let value = program_json(&program());
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            8,
            "name kind status count running restarts error listen: {keys:?}"
        );
        assert_eq!(value["kind"], "cluster");
        assert_eq!(value["status"], "ok");
        assert_eq!(value["listen"][0], "tcp://127.0.0.1:8080");
    }

    #[test]
    fn workers_json_has_the_designs_keys() {
        let worker = WorkerInfo {
            program: "web".into(),
            id: 3,
            pid: 4242,
            status: InstanceStatus::Ok.into(),
            restarts: 0,
            connections: 7,
            requests: 9,
            rss_bytes: 1 << 20,
            uptime_ms: 1500,
            attached: true,
            cpu_ms: 420,
            ..WorkerInfo::default()
        };
        let value = worker_json(&worker);
        for key in [
            "program",
            "id",
            "pid",
            "status",
            "restarts",
            "connections",
            "rss_bytes",
            "uptime_ms",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {value}");
        }
        assert_eq!(value["status"], "ok");
        assert_eq!(value["rss_bytes"], 1 << 20);
        assert_eq!(value["cpu_ms"], 420);
        assert!(value.get("log_dropped_bytes").is_none(), "{value}");
        assert_eq!(cpu_time(420), "0:00.42");
        assert_eq!(cpu_time(723_100), "12:03.10");
        let lossy = WorkerInfo {
            log_dropped_bytes: 3 << 20,
            ..worker
        };
        assert_eq!(worker_json(&lossy)["log_dropped_bytes"], 3 << 20);
    }

    #[test]
    fn the_workers_table_shows_dropped_output_only_when_some_was_dropped() {
        let worker = |id, log_dropped_bytes| WorkerInfo {
            program: "web".into(),
            id,
            pid: 4000 + id as u32,
            status: InstanceStatus::Ok.into(),
            log_dropped_bytes,
            ..WorkerInfo::default()
        };
        let text = workers_table(&[worker(1, 0), worker(2, 0)]).render();
        assert!(!text.contains("DROPPED"), "{text}");
        let text = workers_table(&[worker(1, 0), worker(2, 3 << 20)]).render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("UPTIME  DROPPED"), "{text}");
        assert!(lines[1].ends_with(" -"), "{text}");
        assert!(lines[2].ends_with(" 3.0MiB"), "{text}");
    }

    #[test]
    fn events_print_the_fields_that_are_set() {
        let exit = Event {
            seq: 7,
            time_ms: 1_700_000_000_123,
            program: "web".into(),
            worker: 2,
            pid: 4242,
            kind: EventKind::Exit.into(),
            signal: Some(9),
            reason: "killed".into(),
            ..Event::default()
        };
        let value = event_json(&exit);
        assert_eq!(value["kind"], "exit");
        assert_eq!(value["signal"], 9);
        assert_eq!(value["time"], 1_700_000_000_123_i64);
        assert!(value.get("code").is_none());
        assert!(value.get("payload").is_none());
        assert!(value.get("delay_ms").is_none());
        assert_eq!(
            event_line(&exit),
            "2023-11-14T22:13:20.123Z  web/2             exit      pid=4242 signal=9(SIGKILL) reason=\"killed\""
        );

        let respawn = Event {
            kind: EventKind::Respawn.into(),
            code: Some(1),
            ..Event::default()
        };
        assert_eq!(event_json(&respawn)["delay_ms"], 0);

        let message = Event {
            kind: EventKind::Message.into(),
            payload: b"{\"hi\":1}\xff".to_vec(),
            ..Event::default()
        };
        assert_eq!(event_json(&message)["payload"], "{\"hi\":1}\u{fffd}");

        let status = Event {
            kind: EventKind::Status.into(),
            program_status: ProgramStatus::Starting.into(),
            missed: 3,
            ..Event::default()
        };
        let value = event_json(&status);
        assert_eq!(value["status"], "starting");
        assert_eq!(value["missed"], 3);
        let status = Event {
            kind: EventKind::Status.into(),
            instance_status: InstanceStatus::Backoff.into(),
            ..Event::default()
        };
        assert_eq!(event_json(&status)["status"], "backoff");
    }
}
