//! The timeline: a swimlane chart drawn when a lesson ends, so the whole story is seen at
//! once. A lane per process (role and PID), time across, each cell the state the kernel
//! reported for most of that slice of time (a zombie always shows), and marks where the
//! process sent, received, acquired, released… Like the state tables of the classic OS
//! textbook simulators, but from a real run. It fits an 80-column terminal.

use crate::event::{Event, Kind};
use crate::words::{Lang, Words};
use colored::Colorize;
use unicode_width::UnicodeWidthStr;

/// Width of the lane labels.
const LABEL_W: usize = 18;
/// At most this many cells across (18 + 2 + 58 + 1 = 79 columns).
const MAX_CELLS: usize = 58;

struct Lane {
    pid: i32,
    name: String,
    /// (time, state letter) in order; `None` once gone.
    states: Vec<(u64, Option<char>)>,
    start: u64,
    marks: Vec<(u64, char)>,
}

/// The mark of a lesson's own event kind.
fn mark_of(lesson: Option<&Words>, act: &str) -> Option<char> {
    if act == "gauge" {
        return None; // a quantity, not a moment
    }
    match crate::words::mark(lesson, act) {
        // A kind marked with a space is not a moment on the timeline: a wait shows as the
        // sleep that follows, a gauge is a quantity.
        Some(' ') => None,
        Some(m) => Some(m),
        None => Some('*'),
    }
}

/// Which mark stays when two fall in one cell.
fn priority(mark: char) -> u8 {
    match mark {
        'x' => 5,
        'a' | 'r' => 4,
        '[' | ']' => 3,
        'p' | 'g' => 2,
        '>' | '<' => 1,
        _ => 0,
    }
}

/// The lane of `pid` in `lanes`, added (named `name`, from `t`) if it is not there yet.
fn lane(lanes: &mut Vec<Lane>, pid: i32, name: &str, t: u64) -> usize {
    if let Some(i) = lanes.iter().position(|l| l.pid == pid) {
        return i;
    }
    lanes.push(Lane {
        pid,
        name: name.to_string(),
        states: Vec::new(),
        start: t,
        marks: Vec::new(),
    });
    lanes.len() - 1
}

/// The lanes of one lesson's events, in order of appearance: the main process from
/// `t0`, each process from its spawn (or first sight), with its states and its marks.
fn lanes_of(events: &[Event], t0: u64, lesson: Option<&Words>) -> Vec<Lane> {
    let mut lanes: Vec<Lane> = Vec::new();
    for ev in events {
        match &ev.kind {
            Kind::LessonStart { .. } => {
                lane(&mut lanes, ev.pid, "main", t0);
            }
            Kind::Spawn { name, .. } => {
                lane(&mut lanes, ev.pid, name, ev.t_ns);
            }
            Kind::State { name, to, .. } => {
                let i = lane(&mut lanes, ev.pid, name, ev.t_ns);
                lanes[i].states.push((ev.t_ns, to.chars().next()));
            }
            Kind::Exit { name, .. } => {
                let i = lane(&mut lanes, ev.pid, name, ev.t_ns);
                lanes[i].states.push((ev.t_ns, None));
                lanes[i].marks.push((ev.t_ns, 'x'));
            }
            Kind::Act { act, .. } => {
                if let (Some(i), Some(mark)) = (
                    lanes.iter().position(|l| l.pid == ev.pid),
                    mark_of(lesson, act),
                ) {
                    lanes[i].marks.push((ev.t_ns, mark));
                }
            }
            _ => {}
        }
    }
    lanes
}

/// Time across: `cells` columns over the `span` nanoseconds from `t0`.
struct Grid {
    t0: u64,
    span: f64,
    cells: usize,
}

impl Grid {
    /// The column a moment falls in.
    fn cell_of(&self, t: u64) -> usize {
        (((t.saturating_sub(self.t0)) as f64 / self.span * self.cells as f64) as usize)
            .min(self.cells - 1)
    }

    /// The start of column `c` (and, for `c + 1`, its end).
    fn edge(&self, c: usize) -> u64 {
        self.t0 + (self.span * c as f64 / self.cells as f64) as u64
    }
}

/// Draw the timeline of one lesson from its events (`t0`..`t1`), at most `width` wide.
pub fn draw(
    events: &[Event],
    t0: u64,
    t1: u64,
    width: usize,
    lang: Lang,
    lesson: Option<&Words>,
) -> Vec<String> {
    let mut lanes = lanes_of(events, t0, lesson);
    if lanes.is_empty() || t1 <= t0 {
        return Vec::new();
    }
    let grid = Grid {
        t0,
        span: (t1 - t0) as f64,
        cells: width.saturating_sub(LABEL_W + 3).clamp(20, MAX_CELLS),
    };
    let cells = grid.cells;
    let mut out = Vec::new();
    let title = crate::ui!(lang, "timeline", &[]);
    out.push(String::new());
    out.push(
        format!(
            "── {title} {}",
            "─".repeat((LABEL_W + cells + 3).saturating_sub(title.width() + 4))
        )
        .bold()
        .to_string(),
    );
    for l in &mut lanes {
        out.push(lane_row(l, &grid));
    }
    let total_ms = grid.span / 1e6;
    let left = "0";
    let right = if total_ms < 1000.0 {
        format!("{total_ms:.1} ms")
    } else {
        format!("{:.2} s", total_ms / 1000.0)
    };
    out.push(
        format!(
            "{:LABEL_W$}  {left}{}{right}",
            "",
            " ".repeat(cells.saturating_sub(left.len() + right.len()))
        )
        .dimmed()
        .to_string(),
    );
    out.push(
        crate::ui!(lang, "timeline_legend", &[])
            .dimmed()
            .to_string(),
    );
    out.push(crate::ui!(lang, "timeline_marks", &[]).dimmed().to_string());
    out.push(
        crate::ui!(lang, "timeline_marks2", &[])
            .dimmed()
            .to_string(),
    );
    out
}

/// One lane's line: its label, then a cell per column (the state that lasted longest
/// there), with its marks placed over the cells.
fn lane_row(l: &mut Lane, grid: &Grid) -> String {
    let cells = grid.cells;
    l.states.sort_by_key(|s| s.0);
    l.marks.sort_by_key(|m| m.0);
    let mut row: Vec<String> = Vec::with_capacity(cells);
    for c in 0..cells {
        row.push(cell(l, grid.edge(c), grid.edge(c + 1)));
    }
    let mut placed: Vec<Option<char>> = vec![None; cells];
    for &(t, m) in &l.marks {
        let mut c = grid.cell_of(t);
        // The reap comes right after the zombie: never hide the zombie under it.
        if m == 'x' && row[c].contains('z') && c + 1 < cells {
            c += 1;
        }
        // Two marks in one cell: the later one takes the next cell if it is free;
        // else the one that matters more stays (an acquire over the read it made).
        if let Some(there) = placed[c] {
            if c + 1 < cells && placed[c + 1].is_none() {
                c += 1;
            } else if priority(there) > priority(m) {
                continue;
            }
        }
        placed[c] = Some(m);
        row[c] = m.to_string().bold().to_string();
    }
    let mut label = format!("{} {}", l.name, l.pid);
    if label.width() > LABEL_W {
        label = format!(
            "{}…{}",
            &l.name[..l.name.len().min(LABEL_W.saturating_sub(9))],
            l.pid
        );
    }
    format!(
        "{label:<LABEL_W$} {}{}{}",
        "│".dimmed(),
        row.concat(),
        "│".dimmed()
    )
}

/// The glyph of one cell: the state that lasted longest in `[a, b)`; a zombie always
/// shows; blank before the process existed and after it was reaped.
fn cell(l: &Lane, a: u64, b: u64) -> String {
    if b <= l.start {
        return " ".into();
    }
    let from = a.max(l.start);
    // The state in force at `from`: alive but not sampled yet (`·`) until the first one.
    let mut cur: Option<char> = Some('·');
    for &(t, s) in &l.states {
        if t <= from {
            cur = s;
        }
    }
    let mut zombie = cur == Some('Z');
    let mut since = from;
    let mut durations: Vec<(Option<char>, u64)> = Vec::new();
    for &(t, s) in &l.states {
        if t > from && t < b {
            durations.push((cur, t - since));
            cur = s;
            since = t;
            zombie |= s == Some('Z');
        }
    }
    durations.push((cur, b.saturating_sub(since)));
    let best = durations
        .iter()
        .max_by_key(|(_, d)| *d)
        .and_then(|(s, _)| *s);
    let state = if zombie { Some('Z') } else { best };
    match state {
        None => " ".into(),
        Some('R') => "█".green().to_string(),
        Some('S') => "─".blue().to_string(),
        Some('D') => "▒".yellow().to_string(),
        Some('T') | Some('t') => "‖".magenta().to_string(),
        Some('Z') => "z".red().bold().to_string(),
        Some('·') => "·".dimmed().to_string(),
        Some(c) => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::How;

    fn ev(t_ms: u64, pid: i32, kind: Kind) -> Event {
        Event {
            t_ns: t_ms * 1_000_000,
            pid,
            kind,
        }
    }

    #[test]
    fn a_zombie_shows_and_the_chart_fits_80_columns() {
        colored::control::set_override(false);
        let events = vec![
            ev(
                0,
                1,
                Kind::LessonStart {
                    lesson: "fork".into(),
                    title: "t".into(),
                },
            ),
            ev(
                10,
                2,
                Kind::Spawn {
                    ppid: 1,
                    name: "child".into(),
                    how: How::Fork,
                },
            ),
            ev(
                11,
                2,
                Kind::State {
                    name: "child".into(),
                    from: String::new(),
                    to: "S".into(),
                    waiting_in: None,
                },
            ),
            ev(
                50,
                2,
                Kind::State {
                    name: "child".into(),
                    from: "S".into(),
                    to: "Z".into(),
                    waiting_in: None,
                },
            ),
            ev(
                51,
                2,
                Kind::Exit {
                    name: "child".into(),
                    exitcode: 0,
                    reaped_by: 1,
                },
            ),
        ];
        let lines = draw(&events, 0, 100_000_000, 80, Lang::En, None);
        let child = lines
            .iter()
            .find(|l| l.starts_with("child 2"))
            .expect("a lane");
        assert!(child.contains('z'), "{child}");
        assert!(child.contains('─'), "{child}");
        for l in &lines {
            assert!(l.width() <= 80, "too wide: {l}");
        }
    }
}
