//! The timeline: a swimlane chart drawn when a lesson ends, so the whole story is seen at
//! once. A lane per process (role and PID), time across, each cell the state the kernel
//! reported for most of that slice of time (a zombie always shows), and marks where the
//! process sent, received, acquired, released… Like the state tables of the classic OS
//! textbook simulators, but from a real run. It uses the terminal's width, up to 160
//! columns, and fits 80. The steps are marked on its axis; the legend names the marks
//! this run drew, in the lesson's own words.

use crate::event::{Event, Kind};
use crate::words::{Lang, Words};
use colored::Colorize;
use unicode_width::UnicodeWidthStr;

/// Width of the lane labels.
const LABEL_W: usize = 18;
/// At most this many columns in all (a wide terminal gets a finer chart, no wider).
const MAX_WIDTH: usize = 160;

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

/// What one lesson's events draw: a lane per process, the steps' moments, and which
/// event kinds each mark stands for (for the legend).
struct Chart {
    lanes: Vec<Lane>,
    /// (time, step number).
    steps: Vec<(u64, u32)>,
    /// mark -> the kinds drawn with it, in order of first appearance.
    kinds: Vec<(char, Vec<String>)>,
}

/// The chart of one lesson's events, in order of appearance: the main process from
/// `t0`, each process from its spawn (or first sight), with its states and its marks.
fn lanes_of(events: &[Event], t0: u64, lesson: Option<&Words>) -> Chart {
    let mut lanes: Vec<Lane> = Vec::new();
    let mut steps = Vec::new();
    let mut kinds: Vec<(char, Vec<String>)> = Vec::new();
    for ev in events {
        match &ev.kind {
            Kind::Step { n, .. } => steps.push((ev.t_ns, *n)),
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
                    match kinds.iter_mut().find(|(m, _)| *m == mark) {
                        Some((_, ks)) if !ks.contains(act) => ks.push(act.clone()),
                        Some(_) => {}
                        None => kinds.push((mark, vec![act.clone()])),
                    }
                }
            }
            _ => {}
        }
    }
    Chart {
        lanes,
        steps,
        kinds,
    }
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
/// With `fold`, neighbouring lanes drawn alike (cost's 40 rounds of fork and spawn, the
/// 8 buyers who all read at once) are one lane, labelled with how many they are.
pub fn draw(
    events: &[Event],
    t0: u64,
    t1: u64,
    width: usize,
    lang: Lang,
    lesson: Option<&Words>,
    fold: bool,
) -> Vec<String> {
    let Chart {
        mut lanes,
        steps,
        kinds,
    } = lanes_of(events, t0, lesson);
    if lanes.is_empty() || t1 <= t0 {
        return Vec::new();
    }
    let grid = Grid {
        t0,
        span: (t1 - t0) as f64,
        cells: width.min(MAX_WIDTH).saturating_sub(LABEL_W + 3).max(20),
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
    let rows: Vec<(String, Vec<String>)> = lanes.iter_mut().map(|l| lane_row(l, &grid)).collect();
    let mut i = 0;
    while i < rows.len() {
        // Lanes drawn alike; else a run of brief lanes (a process that lived a cell or
        // two: cost's rounds), drawn in one row, each where it was.
        let alike = rows[i..].iter().take_while(|r| r.1 == rows[i].1).count();
        let brief = rows[i..].iter().take_while(|r| brief(&r.1)).count();
        // The longer of the two runs: a few alike brief lanes inside a longer run of
        // brief ones must not split it (cost's rounds came out as 1 to 9 rows, the
        // lesson 141 to 157 lines long, from run to run).
        let n = match fold {
            false => 1,
            true if brief >= 3 && brief > alike => brief,
            true => alike,
        };
        let label = if n > 1 {
            alike_label(&lanes[i..i + n], lang)
        } else {
            rows[i].0.clone()
        };
        let cells = merged(rows[i..i + n].iter().map(|r| r.1.as_slice()));
        out.push(format!(
            "{label:<LABEL_W$} {}{}{}",
            "│".dimmed(),
            cells.concat(),
            "│".dimmed()
        ));
        i += n;
    }
    if !steps.is_empty() {
        out.push(steps_row(&steps, &grid, lang));
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
    out.extend(legend(&kinds, lang, lesson, LABEL_W + cells + 3));
    out
}

/// The step numbers under the lanes, each at the moment its step began (a later step
/// that would overlap the one before moves right; one that does not fit is left out).
fn steps_row(steps: &[(u64, u32)], grid: &Grid, lang: Lang) -> String {
    let mut row = vec![' '; grid.cells];
    let mut next_free = 0;
    for &(t, n) in steps {
        let digits: Vec<char> = n.to_string().chars().collect();
        let c = grid.cell_of(t).max(next_free);
        if c + digits.len() > grid.cells {
            break;
        }
        row[c..c + digits.len()].copy_from_slice(&digits);
        next_free = c + digits.len() + 1;
    }
    let label = crate::ui!(lang, "timeline_steps", &[]);
    let pad = LABEL_W.saturating_sub(label.width());
    // Under the lanes' cells: past the label and its `│`.
    format!(
        "{}{}  {}",
        label.dimmed(),
        " ".repeat(pad),
        row.iter().collect::<String>().bold()
    )
}

/// The marks this chart drew, each with the words of the kinds it stands for (the
/// lesson's own labels first), wrapped to `width`; `x` (reaped) last.
fn legend(
    kinds: &[(char, Vec<String>)],
    lang: Lang,
    lesson: Option<&Words>,
    width: usize,
) -> Vec<String> {
    let sep = if lang == Lang::Zh { "、" } else { ", " };
    let mut items: Vec<String> = kinds
        .iter()
        .map(|(m, ks)| {
            let words: Vec<String> = ks
                .iter()
                .map(|k| crate::words::label(lang, lesson, &format!("act_{k}"), k))
                .collect();
            format!("{m} {}", words.join(sep))
        })
        .collect();
    items.push(crate::ui!(lang, "timeline_reaped", &[]));
    let mut lines = Vec::new();
    let mut line = String::from(" ");
    for item in items {
        if line.width() + item.width() + 2 > width && !line.trim().is_empty() {
            lines.push(line.dimmed().to_string());
            line = String::from(" ");
        }
        line.push_str("  ");
        line.push_str(&item);
    }
    lines.push(line.dimmed().to_string());
    lines
}

/// One lane's line: its label, then a cell per column (the state that lasted longest
/// there), with its marks placed over the cells.
/// The label of lanes drawn alike: `8 buyers` when they share a role, `31 × fork/spawn`
/// when they have a few, else `78 processes`.
fn alike_label(lanes: &[Lane], lang: Lang) -> String {
    use crate::narrate::human::fold::{role, roles};
    let n = lanes.len();
    let mut kinds: Vec<&str> = Vec::new();
    for l in lanes {
        if !kinds.contains(&role(&l.name)) {
            kinds.push(role(&l.name));
        }
    }
    kinds.sort_unstable();
    let label = match kinds.as_slice() {
        [one] => crate::ui!(
            lang,
            "said_by_many",
            &[("n", &n), ("roles", &roles(lang, one))]
        ),
        few => crate::ui!(
            lang,
            "timeline_alike",
            &[("n", &n), ("roles", &few.join("/"))]
        ),
    };
    if label.width() < LABEL_W {
        label
    } else {
        crate::ui!(lang, "timeline_alike_many", &[("n", &n)])
    }
}

/// Whether a lane's process shows in at most three cells (`·zx`: sampled once, a
/// zombie, reaped).
fn brief(cells: &[String]) -> bool {
    cells.iter().filter(|c| c.as_str() != " ").count() <= 3
}

/// Lanes in one row: each cell the first drawn of theirs, a zombie or a reap before
/// anything else.
fn merged<'a>(rows: impl Iterator<Item = &'a [String]>) -> Vec<String> {
    let rows: Vec<&[String]> = rows.collect();
    let width = rows.first().map_or(0, |r| r.len());
    let rank = |c: &str| {
        if c.contains('z') {
            0
        } else if c.contains('x') {
            1
        } else if c == " " {
            3
        } else {
            2
        }
    };
    (0..width)
        .map(|c| {
            rows.iter()
                .map(|r| &r[c])
                .min_by_key(|cell| rank(cell))
                .cloned()
                .unwrap_or_else(|| " ".into())
        })
        .collect()
}

/// A lane's label and its cells.
fn lane_row(l: &mut Lane, grid: &Grid) -> (String, Vec<String>) {
    let cells = grid.cells;
    l.states.sort_by_key(|s| s.0);
    l.marks.sort_by_key(|m| m.0);
    let mut row: Vec<String> = Vec::with_capacity(cells);
    for c in 0..cells {
        row.push(cell(l, grid.edge(c), grid.edge(c + 1)));
    }
    // Marks in time order, never out of it: a mark goes to its moment's cell, or to the
    // first cell after the mark before it (two in one cell: the later one moves right).
    // When none is left, the one that matters more stays (an acquire over the read it
    // made). The reap comes right after the zombie: never hide the zombie under it.
    let mut placed: Vec<Option<char>> = vec![None; cells];
    let mut next_free = 0;
    for &(t, m) in &l.marks {
        let mut c = grid.cell_of(t);
        if m == 'x' && row[c].contains('z') && c + 1 < cells {
            c += 1;
        }
        let c = if c >= next_free {
            c
        } else if next_free < cells {
            next_free
        } else {
            let last = cells - 1;
            if placed[last].is_some_and(|there| priority(there) > priority(m)) {
                continue;
            }
            last
        };
        placed[c] = Some(m);
        next_free = c + 1;
        row[c] = mark_glyph(m, state_at(l, grid.edge(c), grid.edge(c + 1)));
    }
    let mut label = format!("{} {}", l.name, l.pid);
    if label.width() > LABEL_W {
        label = format!(
            "{}…{}",
            &l.name[..l.name.len().min(LABEL_W.saturating_sub(9))],
            l.pid
        );
    }
    (label, row)
}

/// The state of a lane in `[a, b)`: the one that lasted longest there; a zombie always
/// wins; `None` before the process existed and after it was reaped.
fn state_at(l: &Lane, a: u64, b: u64) -> Option<char> {
    if b <= l.start {
        return None;
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
    if zombie {
        Some('Z')
    } else {
        best
    }
}

/// A mark drawn over a cell, in that cell's colour: a task start on a running process
/// stays green, so running shows even where the marks are dense.
fn mark_glyph(m: char, state: Option<char>) -> String {
    let m = m.to_string().bold();
    match state {
        Some('R') => m.green(),
        Some('S') => m.blue(),
        Some('D') => m.yellow(),
        Some('Z') => m.red(),
        _ => m,
    }
    .to_string()
}

/// The glyph of one cell: the state that lasted longest in `[a, b)`; a zombie always
/// shows; blank before the process existed and after it was reaped.
fn cell(l: &Lane, a: u64, b: u64) -> String {
    match state_at(l, a, b) {
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
                    lang: "en".into(),
                    janitor: None,
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
        let lines = draw(&events, 0, 100_000_000, 80, Lang::En, None, true);
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

    fn act(t_ms: u64, pid: i32, act: &str) -> Event {
        ev(
            t_ms,
            pid,
            Kind::Act {
                act: act.into(),
                fields: vec![],
            },
        )
    }

    /// Marks crowded into the last cells keep their order: a read and a release before
    /// the reap never show after its `x`; the steps sit on the axis; the legend names
    /// only the marks drawn; a wide terminal gets up to 160 columns.
    #[test]
    fn marks_keep_their_order_steps_mark_the_axis_and_width_is_used() {
        colored::control::set_override(false);
        let mut events = vec![
            ev(
                0,
                1,
                Kind::LessonStart {
                    lesson: "lock".into(),
                    title: "t".into(),
                    lang: "en".into(),
                    janitor: None,
                },
            ),
            ev(
                0,
                1,
                Kind::Step {
                    n: 1,
                    key: "a".into(),
                    title: "a".into(),
                    hint: None,
                },
            ),
            ev(
                1,
                2,
                Kind::Spawn {
                    ppid: 1,
                    name: "buyer".into(),
                    how: How::Fork,
                },
            ),
            ev(
                500,
                1,
                Kind::Step {
                    n: 2,
                    key: "b".into(),
                    title: "b".into(),
                    hint: None,
                },
            ),
        ];
        // Within the last 1% of the run: all in one cell at 80 columns.
        events.push(act(995, 2, "acquire"));
        events.push(act(996, 2, "read"));
        events.push(act(997, 2, "release"));
        events.push(ev(
            998,
            2,
            Kind::Exit {
                name: "buyer".into(),
                exitcode: 0,
                reaped_by: 1,
            },
        ));
        let lines = draw(&events, 0, 1_000_000_000, 80, Lang::En, None, true);
        let buyer = lines.iter().find(|l| l.starts_with("buyer 2")).unwrap();
        let marks: String = buyer.chars().filter(|c| "ar<x".contains(*c)).collect();
        assert!(marks.ends_with('x'), "the reap is the last mark: {buyer}");
        assert!(!buyer.contains("x<") && !buyer.contains("xr"), "{buyer}");
        let steps = lines.iter().find(|l| l.starts_with("steps")).unwrap();
        let col = |d: char| steps.chars().position(|c| c == d).unwrap();
        let lane_start = buyer.chars().position(|c| c == '│').unwrap() + 1;
        assert_eq!(col('1'), lane_start, "step 1 at 0: {steps}");
        assert!(col('2') > col('1') + 20, "step 2 halfway: {steps}");
        let legend = lines.join("\n");
        assert!(legend.contains("a acquire") && legend.contains("x reaped"));
        assert!(
            !legend.contains("p put"),
            "a mark not drawn is not in the legend"
        );
        let wide = draw(&events, 0, 1_000_000_000, 200, Lang::En, None, true);
        assert!(wide.iter().all(|l| l.width() <= 160));
        assert!(
            wide.iter().any(|l| l.width() > 150),
            "a wide terminal is used"
        );
    }

    /// A lesson's start, and children of PID 1 started and reaped at the times given.
    fn lives(lesson: &str, kids: &[(i32, &str, u64, u64)]) -> Vec<Event> {
        let start = Kind::LessonStart {
            lesson: lesson.into(),
            title: "t".into(),
            lang: "en".into(),
            janitor: None,
        };
        let mut events = vec![ev(0, 1, start)];
        for &(pid, name, born, reaped) in kids {
            let (name, how, ppid) = (name.to_string(), How::Fork, 1);
            events.push(ev(
                born,
                pid,
                Kind::Spawn {
                    ppid,
                    name: name.clone(),
                    how,
                },
            ));
            let (exitcode, reaped_by) = (0, 1);
            events.push(ev(
                reaped,
                pid,
                Kind::Exit {
                    name,
                    exitcode,
                    reaped_by,
                },
            ));
        }
        events
    }

    #[test]
    fn lanes_drawn_alike_are_one_lane_unless_verbose() {
        colored::control::set_override(false);
        let kids = [
            (2, "buyer-1", 10, 40),
            (3, "buyer-2", 10, 40),
            (4, "fork-1", 10, 80),
            (5, "spawn-1", 10, 80),
        ];
        let events = lives("lock", &kids);
        let folded = draw(&events, 0, 100_000_000, 80, Lang::En, None, true);
        let labels: Vec<&str> = folded
            .iter()
            .filter(|l| l.contains('│'))
            .map(|l| l.split('│').next().unwrap_or("").trim())
            .collect();
        assert_eq!(
            labels,
            ["main 1", "2 buyers", "2 × fork/spawn"],
            "{folded:#?}"
        );
        let all = draw(&events, 0, 100_000_000, 80, Lang::En, None, false);
        assert_eq!(
            all.iter().filter(|l| l.contains('│')).count(),
            5,
            "{all:#?}"
        );
    }

    #[test]
    fn brief_lanes_in_a_row_share_one_row_each_where_it_was() {
        colored::control::set_override(false);
        let kids = [
            (2, "fork-1", 10, 11),
            (3, "fork-2", 30, 31),
            (4, "fork-3", 50, 51),
            (5, "fork-4", 70, 71),
        ];
        let lines = draw(
            &lives("cost", &kids),
            0,
            100_000_000,
            80,
            Lang::En,
            None,
            true,
        );
        let row = lines
            .iter()
            .find(|l| l.starts_with("4 forks"))
            .unwrap_or_else(|| panic!("one row for the four: {lines:#?}"));
        assert_eq!(row.matches('x').count(), 4, "{row}");
    }
}
