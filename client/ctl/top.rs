//! `infantctl top`: a full-screen view of programs and workers, refreshed every
//! second from `List` and `EachWorker`, with the `Events` stream at the bottom.
//!
//! Keys: `c` sort by CPU, `m` by memory, `n` by name, `u` by uptime, `r` by
//! restarts; `/` filters by program (or `NAME/ID`), Enter keeps the filter, Esc
//! drops it; `q`, Esc or Ctrl-C quits and gives the terminal back as it was.
//!
//! CPU % is the CPU time a worker used between two refreshes over the time
//! between them; the first frame, with one sample only, shows the average since
//! the worker was spawned. `--once` (and any run without a terminal) prints that
//! first frame as text; with `--json`, the programs and workers as objects.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use infant::control::{Control, ControlError};
use infant::names::{instance_status_name, status_name};
use infant::proto::{Event, ProgramInfo, WorkerInfo};
use ratatui::backend::{Backend, TestBackend};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use tokio::sync::mpsc;

use crate::args::TopArgs;
use crate::output::{bytes, event_line, uptime, Output};
use crate::run::Failure;

/// How often the rows are refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// Events kept for the bottom pane.
const EVENTS_KEPT: usize = 200;
/// Lines of events a `--once` frame shows.
const EVENTS_ONCE: usize = 8;
/// The width of a `--once` frame when stdout is not a terminal.
const ONCE_WIDTH: u16 = 120;

/// Runs the live view, or prints one frame.
pub async fn top(control: &Control, args: TopArgs, out: &mut Output) -> Result<(), Failure> {
    let mut view = View::new(args.name.clone());
    view.refresh(control).await?;
    let live = !args.once && !out.json && io::stdout().is_terminal() && io::stdin().is_terminal();
    if out.json {
        out.programs(&view.programs)?;
        out.workers(&view.workers)?;
        return Ok(());
    }
    if !live {
        let mut history = control.events(args.name.as_deref(), true, false).await?;
        let action = "read events";
        while let Some(event) = history
            .message()
            .await
            .map_err(|status| ControlError::status(action, status))?
        {
            view.push_event(&event);
        }
        return print_once(&view, out);
    }
    let mut terminal = ratatui::try_init()?;
    let result = run_live(&mut terminal, control, &mut view).await;
    // Whatever happened, the terminal is given back as it was.
    let restored = ratatui::try_restore();
    result?;
    restored?;
    Ok(())
}

/// One frame, drawn as on a terminal of the current width (or 120 columns) and
/// just as tall as it needs, printed as plain text.
fn print_once(view: &View, out: &mut Output) -> Result<(), Failure> {
    let width = crossterm::terminal::size()
        .map(|(w, _)| w)
        .unwrap_or(ONCE_WIDTH)
        .max(60);
    let rows = view.rows().len() as u16;
    let events = view.events.len().min(EVENTS_ONCE) as u16;
    let height = 2 + rows + events + 2;
    let mut terminal = Terminal::new(TestBackend::new(width, height))?;
    terminal.draw(|frame| draw(frame, view, events))?;
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            if let Some(cell) = buffer.cell((x, y)) {
                line.push_str(cell.symbol());
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    out.raw(text.as_bytes())?;
    Ok(())
}

/// Redraws every second and on every key or event until told to quit.
async fn run_live<B: Backend>(
    terminal: &mut Terminal<B>,
    control: &Control,
    view: &mut View,
) -> Result<(), Failure> {
    let mut keys = keyboard();
    let mut events = control.events(view.name.as_deref(), true, true).await?;
    let mut events_open = true;
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        terminal.draw(|frame| {
            let height = frame.area().height;
            // The bottom third for events, at least 5 lines.
            let pane = (height / 3).max(5).saturating_sub(2);
            draw(frame, view, pane)
        })?;
        tokio::select! {
            _ = tick.tick() => view.refresh(control).await?,
            key = keys.recv() => match key {
                Some(event) => {
                    if view.key(&event) == Wanted::Quit {
                        return Ok(());
                    }
                }
                None => return Ok(()),
            },
            event = events.message(), if events_open => match event {
                Ok(Some(event)) => view.push_event(&event),
                Ok(None) | Err(_) => events_open = false,
            },
        }
    }
}

/// Terminal input on a thread of its own (crossterm's reads block), ending
/// when the receiver is dropped.
fn keyboard() -> mpsc::Receiver<TermEvent> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match crossterm::event::poll(Duration::from_millis(200)) {
                Ok(true) => match crossterm::event::read() {
                    Ok(event) => {
                        if tx.blocking_send(event).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Quit,
    Redraw,
}

/// The column the workers are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Name,
    Cpu,
    Memory,
    Uptime,
    Restarts,
}

impl Sort {
    fn label(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Cpu => "cpu",
            Sort::Memory => "memory",
            Sort::Uptime => "uptime",
            Sort::Restarts => "restarts",
        }
    }
}

/// A worker's identity for CPU sampling: a respawn (new pid) starts afresh.
type WorkerKey = (String, u64, u32);

/// What the screen shows.
struct View {
    name: Option<String>,
    programs: Vec<ProgramInfo>,
    workers: Vec<WorkerInfo>,
    /// The last CPU sample of each worker, and when it was taken.
    samples: HashMap<WorkerKey, (u64, Instant)>,
    /// CPU % per worker, from the last two samples.
    cpu: HashMap<WorkerKey, f64>,
    events: VecDeque<String>,
    sort: Sort,
    filter: String,
    editing: bool,
}

impl View {
    fn new(name: Option<String>) -> View {
        View {
            name,
            programs: Vec::new(),
            workers: Vec::new(),
            samples: HashMap::new(),
            cpu: HashMap::new(),
            events: VecDeque::new(),
            sort: Sort::Name,
            filter: String::new(),
            editing: false,
        }
    }

    /// A fresh `List` and `EachWorker`, and CPU % from the previous sample.
    async fn refresh(&mut self, control: &Control) -> Result<(), Failure> {
        self.programs = control.list(self.name.as_deref()).await?;
        self.workers = control.workers(self.name.as_deref()).await?;
        let now = Instant::now();
        let mut samples = HashMap::with_capacity(self.workers.len());
        self.cpu.clear();
        for worker in &self.workers {
            let key = (worker.program.clone(), worker.id, worker.pid);
            let percent = match self.samples.get(&key) {
                Some((before, then)) => {
                    let wall = now.duration_since(*then).as_secs_f64() * 1000.0;
                    let used = worker.cpu_ms.saturating_sub(*before) as f64;
                    if wall > 0.0 {
                        used / wall * 100.0
                    } else {
                        0.0
                    }
                }
                None if worker.uptime_ms > 0 => {
                    worker.cpu_ms as f64 / worker.uptime_ms as f64 * 100.0
                }
                None => 0.0,
            };
            self.cpu.insert(key.clone(), percent);
            samples.insert(key, (worker.cpu_ms, now));
        }
        // Workers that are gone leave no sample behind.
        self.samples = samples;
        Ok(())
    }

    fn push_event(&mut self, event: &Event) {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(event_line(event));
    }

    fn key(&mut self, event: &TermEvent) -> Wanted {
        let TermEvent::Key(key) = event else {
            return Wanted::Redraw;
        };
        if key.kind != KeyEventKind::Press {
            return Wanted::Redraw;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Wanted::Quit;
        }
        if self.editing {
            match key.code {
                KeyCode::Enter => self.editing = false,
                KeyCode::Esc => {
                    self.editing = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            return Wanted::Redraw;
        }
        match key.code {
            KeyCode::Char('q') => return Wanted::Quit,
            KeyCode::Esc if self.filter.is_empty() => return Wanted::Quit,
            KeyCode::Esc => self.filter.clear(),
            KeyCode::Char('/') => self.editing = true,
            KeyCode::Char('c') => self.sort = Sort::Cpu,
            KeyCode::Char('m') => self.sort = Sort::Memory,
            KeyCode::Char('n') => self.sort = Sort::Name,
            KeyCode::Char('u') => self.sort = Sort::Uptime,
            KeyCode::Char('r') => self.sort = Sort::Restarts,
            _ => {}
        }
        Wanted::Redraw
    }

    fn cpu_of(&self, worker: &WorkerInfo) -> f64 {
        self.cpu
            .get(&(worker.program.clone(), worker.id, worker.pid))
            .copied()
            .unwrap_or(0.0)
    }

    /// Program rows, each followed by its workers in the chosen order; only what
    /// the filter matches.
    fn rows(&self) -> Vec<Row<'static>> {
        let mut rows = Vec::new();
        for program in &self.programs {
            let mut workers: Vec<&WorkerInfo> = self
                .workers
                .iter()
                .filter(|w| w.program == program.name)
                .filter(|w| {
                    self.filter.is_empty()
                        || program.name.contains(&self.filter)
                        || format!("{}/{}", w.program, w.id).contains(&self.filter)
                })
                .collect();
            if !self.filter.is_empty() && workers.is_empty() && !program.name.contains(&self.filter)
            {
                continue;
            }
            self.order(&mut workers);
            let cpu: f64 = workers.iter().map(|w| self.cpu_of(w)).sum();
            let status = status_name(program.status());
            rows.push(
                Row::new(vec![
                    format!("{} ({}/{})", program.name, program.running, program.count),
                    status.to_owned(),
                    String::new(),
                    format!("{cpu:.1}"),
                    bytes(workers.iter().map(|w| w.rss_bytes).sum()),
                    workers
                        .iter()
                        .map(|w| w.connections)
                        .sum::<u64>()
                        .to_string(),
                    workers.iter().map(|w| w.requests).sum::<u64>().to_string(),
                    program.restarts.to_string(),
                    String::new(),
                ])
                .style(Style::new().add_modifier(Modifier::BOLD).fg(colour(status))),
            );
            for worker in workers {
                let status = instance_status_name(worker.status());
                rows.push(
                    Row::new(vec![
                        format!("  {}/{}", worker.program, worker.id),
                        status.to_owned(),
                        worker.pid.to_string(),
                        format!("{:.1}", self.cpu_of(worker)),
                        bytes(worker.rss_bytes),
                        if worker.attached {
                            worker.connections.to_string()
                        } else {
                            "-".to_owned()
                        },
                        if worker.attached {
                            worker.requests.to_string()
                        } else {
                            "-".to_owned()
                        },
                        worker.restarts.to_string(),
                        uptime(worker.uptime_ms),
                    ])
                    .style(Style::new().fg(colour(status))),
                );
            }
        }
        rows
    }

    fn order(&self, workers: &mut [&WorkerInfo]) {
        match self.sort {
            Sort::Name => workers.sort_by_key(|w| w.id),
            Sort::Cpu => workers.sort_by(|a, b| self.cpu_of(b).total_cmp(&self.cpu_of(a))),
            Sort::Memory => workers.sort_by_key(|w| std::cmp::Reverse(w.rss_bytes)),
            Sort::Uptime => workers.sort_by_key(|w| std::cmp::Reverse(w.uptime_ms)),
            Sort::Restarts => workers.sort_by_key(|w| std::cmp::Reverse(w.restarts)),
        }
    }
}

/// The status colours of the tables, as terminal colours.
fn colour(status: &str) -> Color {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return Color::Reset;
    }
    match status {
        "ok" => Color::Green,
        "starting" | "stopping" => Color::Yellow,
        "error" | "fatal" | "backoff" => Color::Red,
        _ => Color::Gray,
    }
}

/// The whole screen: a title line, the table, the last `events` events.
fn draw(frame: &mut Frame, view: &View, events: u16) {
    let [title, table, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(events + 2),
    ])
    .areas(frame.area());
    let filter = if view.editing {
        format!("filter: /{}_", view.filter)
    } else if view.filter.is_empty() {
        "/ filter".to_owned()
    } else {
        format!("filter: /{}", view.filter)
    };
    let header = format!(
        "infantctl top: {} programs, {} workers   sort: {} (c m n u r)   {filter}   q quit",
        view.programs.len(),
        view.workers.len(),
        view.sort.label(),
    );
    frame.render_widget(Paragraph::new(Line::from(header)), title);
    let widths = [
        Constraint::Min(16),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    let header = Row::new([
        "NAME", "STATUS", "PID", "CPU%", "RSS", "CONN", "REQUESTS", "RESTARTS", "UPTIME",
    ])
    .style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_widget(Table::new(view.rows(), widths).header(header), table);
    let shown = view.events.len().saturating_sub(usize::from(events));
    let lines: Vec<Line> = view
        .events
        .iter()
        .skip(shown)
        .map(|line| Line::from(line.clone()))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" events ")),
        bottom,
    );
}
