//! Renderers of the event stream.
//!
//! Lessons, children and the observer send [`Event`]s into one [`Sink`]; a single
//! renderer thread, the only writer of stdout, turns them into human narration
//! ([`human`]) or JSON Lines ([`json`]). Renderers work over `impl Write`, so they can be
//! tested on a `Vec<u8>`.
//!
//! The lesson can wait for the renderer ([`Sink::pause`]): everything emitted so far is
//! written, and in step mode the renderer waits for a key before answering.
//!
//! Every narration line passes through [`Sink::emit`], wherever it was said (the main
//! process, its threads, a forked child's report, a spawned child's channel): so the sink
//! keeps the [`Reader`], a student who reads each line in order, and a pacing pause
//! ([`Sink::wait_for_reader`]) waits until that reader has caught up.

pub mod human;
pub mod json;
pub mod timeline;
pub mod trace;

use crate::event::{Event, Kind};
use std::io;
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// What flows to the renderer thread.
pub enum Msg {
    Event(Event),
    /// Write out everything so far, then answer (in step mode: after a key press).
    /// The answer is false if the student asked to quit.
    Pause(mpsc::Sender<bool>),
    /// Write out everything so far, then answer.
    Flush(mpsc::Sender<bool>),
    /// An event stamped at this moment will come once a slow call returns (a spawn is
    /// stamped before its fork + exec): hold everything stamped from then on until it
    /// has come ([`Sink::expect`]).
    Expect(u64),
    /// The event expected at this stamp has been sent (or never will be).
    Expected(u64),
}

/// How long a reader takes over a line: about 250 words a minute for the Latin part,
/// 400 characters a minute for Chinese (a mixed line is both), and never less than
/// [`READ_FLOOR`] (a line of two words is still looked at). `tests/it/reading.rs` reads
/// the stream by the same rule.
pub fn reading_time(text: &str) -> Duration {
    // The CJK ideographs (unified, extension A, compatibility, the supplementary planes).
    let is_cjk = |c: char| {
        let c = c as u32;
        (0x3400..=0x4DBF).contains(&c)
            || (0x4E00..=0x9FFF).contains(&c)
            || (0xF900..=0xFAFF).contains(&c)
            || (0x20000..=0x2FA1F).contains(&c)
    };
    let cjk = text.chars().filter(|&c| is_cjk(c)).count();
    let words = text
        .split(|c: char| c.is_whitespace() || is_cjk(c))
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count();
    let secs = words as f64 * 60.0 / WORDS_PER_MINUTE + cjk as f64 * 60.0 / CJK_PER_MINUTE;
    Duration::from_secs_f64(secs).max(READ_FLOOR)
}

/// How much longer than it owed when it began a pause waits for lines said during it.
const MAX_EXTRA_READING: Duration = Duration::from_secs(30);

/// How far behind the screen the reader may be when the main process says its next line
/// ([`Sink::keep_up`]): the promise is 5 s at `--speed 1`; the rest is room for what the
/// children say meanwhile.
pub const SAY_AHEAD: Duration = Duration::from_secs(1);

/// `d` at `--speed` `speed`, in nanoseconds.
fn scaled(d: Duration, speed: f64) -> u64 {
    (d.as_secs_f64() * speed * 1e9) as u64
}

/// Reading speed of English (and of the Latin words of any line).
pub const WORDS_PER_MINUTE: f64 = 250.0;
/// Reading speed of Chinese, in characters.
pub const CJK_PER_MINUTE: f64 = 400.0;
/// The least time a line is given.
pub const READ_FLOOR: Duration = Duration::from_millis(600);

/// The student the pacing waits for: reads every narration line (`say`, and a `step`'s
/// title) in order, at [`reading_time`] scaled by `--speed`, starting each line when it
/// appears or when the previous one is read, whichever is later.
#[derive(Default)]
struct Reader(Mutex<ReaderState>);

/// The most an event from a child has arrived after its stamp, in this run (ns): the
/// narrator holds events at least that long (and half again), up to [`MAX_HOLD`], so that
/// a machine whose children's news comes late still prints it in stamp order.
#[derive(Default)]
struct Late(std::sync::atomic::AtomicU64);

impl Late {
    fn note(&self, t_ns: u64) {
        let late = crate::event::now_ns().saturating_sub(t_ns);
        self.0.fetch_max(late, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long to hold, at least `floor`.
    fn hold(&self, floor: Duration) -> u64 {
        let late = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (floor.as_nanos() as u64).max((late + late / 2).min(MAX_HOLD.as_nanos() as u64))
    }
}

#[derive(Default)]
struct ReaderState {
    /// `--speed`; 0 (the default, and `--speed 0`): nothing is counted, nobody waits.
    speed: f64,
    /// When (`CLOCK_MONOTONIC`, ns) the reader will have read every line so far.
    done_ns: u64,
    /// The last sentence read, and who said it: the same sentence from another process
    /// next is the same line on the screen (eight buyers reading at once are told as one
    /// line), read once.
    last_say: Option<(i32, String)>,
    /// With `--step`: a pause waits for a key ([`Msg::Pause`]) after its `pause` event.
    prompting: bool,
}

impl Reader {
    fn state(&self) -> std::sync::MutexGuard<'_, ReaderState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A line appeared: the reader reads it after the ones before.
    fn heard(&self, ev: &Event) {
        let mut st = self.state();
        let text = match &ev.kind {
            Kind::Say { text, .. } => {
                let again = st
                    .last_say
                    .as_ref()
                    .is_some_and(|(pid, last)| *pid != ev.pid && last == text);
                st.last_say = Some((ev.pid, text.clone()));
                if again {
                    return;
                }
                text
            }
            Kind::Step { title, .. } => {
                st.last_say = None;
                title
            }
            _ => return,
        };
        if st.speed > 0.0 {
            st.done_ns = st.done_ns.max(ev.t_ns) + scaled(reading_time(text), st.speed);
        }
    }

    /// The reader read while the program waited (for a key): nothing is owed any more.
    fn caught_up(&self) {
        let mut st = self.state();
        st.done_ns = st.done_ns.min(crate::event::now_ns());
    }
}

/// See [`Sink::expect`]: sends `Expected` when dropped, after the expected event (on the
/// same channel, so the narrator has it in hand by then).
pub struct Expecting(mpsc::Sender<Msg>, u64);

impl Drop for Expecting {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Expected(self.1));
    }
}

/// Where events go. Cheap to clone; every thread of the main process has one, and all
/// share one [`Reader`].
#[derive(Clone)]
pub struct Sink(mpsc::Sender<Msg>, Arc<Reader>, Arc<Late>);

impl Sink {
    pub fn emit(&self, ev: Event) {
        self.1.heard(&ev);
        let _ = self.0.send(Msg::Event(ev));
    }

    /// An event that came from a child, over its channel: how late it came is noted, and
    /// events are held that long from now on (see [`Late`]).
    pub fn emit_arrived(&self, ev: Event) {
        self.2.note(ev.t_ns);
        self.emit(ev);
    }

    /// An event stamped `t_ns` will be emitted once a slow call returns (a spawn, stamped
    /// before `Command::spawn`, which can take tens of milliseconds under load): until the
    /// guard is dropped, right after that event is emitted, nothing stamped from `t_ns`
    /// on is rendered, so that what happened meanwhile (the observer's sample of this
    /// process asleep in the spawn) comes after it.
    pub fn expect(&self, t_ns: u64) -> Expecting {
        let _ = self.0.send(Msg::Expect(t_ns));
        Expecting(self.0.clone(), t_ns)
    }

    /// Count reading time at `speed` (`--speed`) from now on; 0 counts nothing.
    pub fn read_at(&self, speed: f64) {
        self.1.state().speed = speed;
    }

    /// A pacing pause: wait `at_least`, and until the reader has read every line so far,
    /// lines that arrive meanwhile included (a child speaks while the lesson waits), up
    /// to [`MAX_EXTRA_READING`] (scaled) beyond what was owed when the pause began, so
    /// that a child talking on and on cannot hold a pause forever. False if the run must
    /// stop.
    pub fn wait_for_reader(&self, at_least: Duration) -> bool {
        let now = crate::event::now_ns();
        let (speed, done) = {
            let st = self.1.state();
            (st.speed, st.done_ns)
        };
        let first = now + at_least.as_nanos() as u64;
        let cap = done.max(first) + scaled(MAX_EXTRA_READING, speed);
        self.wait_reader(|done| done.max(first).min(cap))
    }

    /// Where the main process says a line (before it, and after it): wait until the
    /// reader is at most [`SAY_AHEAD`] (scaled) behind, so that a lesson saying several
    /// lines in a row never leaves them on the screen faster than they are read. Bounded
    /// like a pause; false if the run must stop.
    pub fn keep_up(&self) -> bool {
        let speed = self.1.state().speed;
        if speed <= 0.0 {
            return true;
        }
        let ahead = scaled(SAY_AHEAD, speed);
        let cap = crate::event::now_ns() + scaled(MAX_EXTRA_READING, speed);
        self.wait_reader(|done| done.saturating_sub(ahead).min(cap))
    }

    /// Sleep until `until(done)`, `done` being when the reader will have read every line
    /// so far; in slices, so that a line arriving meanwhile moves the end. False if the
    /// run must stop.
    fn wait_reader(&self, until: impl Fn(u64) -> u64) -> bool {
        loop {
            let target = until(self.1.state().done_ns);
            let left = target.saturating_sub(crate::event::now_ns());
            if left == 0 {
                return true;
            }
            if !crate::procs::sleep(Duration::from_nanos(left).min(Duration::from_millis(50))) {
                return false;
            }
        }
    }

    /// The pause of step `step` (a [`Kind::Pause`] event about `pid`): it is written in stamp order,
    /// like any event, once everything stamped before it is (what it shows, the human
    /// view's hint, comes after what happened before it); in step mode the lesson then
    /// waits until everything so far is written and a key is pressed. False if the
    /// student asked to stop. Without `--step` nothing waits for it: a pause that wrote
    /// everything out at once let a child's event stamped before it, still on its way,
    /// come after it.
    pub fn pause(&self, pid: i32, step: u32) -> bool {
        let waits = self.1.state().prompting;
        self.emit(Event::now(pid, Kind::Pause { step, waits }));
        self.wait_key()
    }

    /// In step mode, wait until everything emitted so far is written and a key is
    /// pressed (false if the student asked to stop); else nothing.
    pub fn wait_key(&self) -> bool {
        !self.1.state().prompting || self.ask(Msg::Pause)
    }

    /// Wait until everything emitted so far is written.
    pub fn flush(&self) {
        self.ask(Msg::Flush);
    }

    fn ask(&self, make: fn(mpsc::Sender<bool>) -> Msg) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.0.send(make(tx)).is_err() {
            return true;
        }
        rx.recv().unwrap_or(true)
    }
}

/// A renderer of events.
pub trait Render: Send {
    fn event(&mut self, ev: &Event) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// The run is over: write what is left (a trace file, a closing line).
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Run `f` (a key read) with any live display out of the way.
    fn suspended(&mut self, f: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
        f()
    }
    /// Nothing came for a while (`now_ns`, `CLOCK_MONOTONIC`): write what was held back
    /// to be told with what might follow, once nothing alike can follow any more.
    fn tick(&mut self, _now_ns: u64) -> io::Result<()> {
        Ok(())
    }
}

/// Several renderers fed the same events (the narration and a trace file).
pub struct Tee(pub Vec<Box<dyn Render>>);

impl Render for Tee {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|r| r.event(ev))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|r| r.flush())
    }
    /// Every renderer finishes, even after one failed (a closed stdout must not cost
    /// the trace file its contents); the first error is the answer.
    fn finish(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for r in &mut self.0 {
            let result = r.finish();
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
    fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|r| r.tick(now_ns))
    }
    fn suspended(&mut self, f: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
        match self.0.first_mut() {
            Some(r) => r.suspended(f),
            None => f(),
        }
    }
}

/// A renderer that sees each event as the `--json` stream has it (stamped to the
/// microsecond, a float to three places): so that what it renders is a function of the
/// stream, and a replay of the recording renders the same (the human view). What is in
/// no stream (a tour's title card, before its lesson) passes as it is.
pub struct AsStreamed<R> {
    pub render: R,
    lesson: Option<(String, u64)>,
}

impl<R> AsStreamed<R> {
    pub fn new(render: R) -> Self {
        AsStreamed {
            render,
            lesson: None,
        }
    }
}

impl<R: Render> Render for AsStreamed<R> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        if let Kind::LessonStart { lesson, .. } = &ev.kind {
            self.lesson = Some((lesson.clone(), ev.t_ns));
        }
        // An event the stream could not carry back (there is none: tests/it/replay.rs
        // replays every lesson from its recording and compares) is rendered as it is.
        let card = matches!(&ev.kind, Kind::Act { act, .. } if act == "tour_card");
        let streamed = match &self.lesson {
            Some((lesson, t0)) if !card => Event::from_json(&ev.to_json(lesson, *t0), *t0)
                .ok()
                .map(|(_, e)| e),
            _ => None,
        };
        self.render.event(streamed.as_ref().unwrap_or(ev))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.render.flush()
    }
    fn finish(&mut self) -> io::Result<()> {
        self.render.finish()
    }
    fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        self.render.tick(now_ns)
    }
    fn suspended(&mut self, f: &mut dyn FnMut() -> io::Result<bool>) -> io::Result<bool> {
        self.render.suspended(f)
    }
}

/// A renderer whose write errors name its output ("writing the trace to t.json failed:
/// …"), so the one error line says which output failed.
pub struct Named<R> {
    pub what: String,
    pub render: R,
}

impl<R: Render> Named<R> {
    fn name(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("writing {} failed: {e}", self.what))
    }
}

impl<R: Render> Render for Named<R> {
    fn event(&mut self, ev: &Event) -> io::Result<()> {
        self.render.event(ev).map_err(|e| self.name(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.render.flush().map_err(|e| self.name(e))
    }
    fn finish(&mut self) -> io::Result<()> {
        self.render.finish().map_err(|e| self.name(e))
    }
    fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        self.render.tick(now_ns).map_err(|e| self.name(e))
    }
}

/// How long an event is held before it is rendered, so that one stamped earlier in
/// another process (coming over a channel, a little later) is rendered before it: the
/// narration reads in the order things happened, not the order the news arrived. It
/// costs no run any time (a pause or the end takes in what is on its way for
/// [`PAUSE_HOLD`], not this), only the delay of a line on the screen: 20 ms was too
/// short with the suite at four threads while a build ran beside it (8 events of 7
/// lessons out of stamp order in one run, by 0.2 to 9 ms).
const HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// How often the narrator looks at what it holds when nothing comes (what the old hold
/// of 20 ms woke every half of).
const WAKE: Duration = Duration::from_millis(10);

/// How long a pause or a flush takes in what is still on its way before it writes
/// everything out: events come over a channel within a millisecond or two of their stamp
/// (measured: with 5 ms, no event of 10 tours, the machine busy, came out of stamp order;
/// but with 17 lessons the suite keeps both CPUs busier, and 2 of 3 clean-clone CI runs
/// had an observer's sample arrive after its pause had written a later event: 0.12 ms
/// out of order), and every step pauses, so the whole hold would cost every lesson a
/// step's worth.
const PAUSE_HOLD: std::time::Duration = std::time::Duration::from_millis(12);

/// The most either hold grows to when children's events come late (see [`Late`]): seen in
/// CI, under the suite's load, a pool worker's `task_start` came 44 ms after its stamp.
pub(crate) const MAX_HOLD: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest an expected event ([`Sink::expect`]) holds the narration back: a call
/// that takes longer is broken, and its bound will end the run.
const MAX_EXPECT: Duration = Duration::from_secs(5);

/// Events waiting to be rendered, keyed by stamp (then arrival, among equal stamps), and
/// the stamps of events still expected (with how many at each).
#[derive(Default)]
struct Held {
    events: std::collections::BTreeMap<(u64, u64), Event>,
    seq: u64,
    expected: std::collections::BTreeMap<u64, usize>,
}

impl Held {
    /// An event, after any already held at its stamp.
    fn push(&mut self, ev: Event) {
        self.seq += 1;
        self.events.insert((ev.t_ns, self.seq), ev);
    }

    /// Take in a message that is not a pause or a flush; false for those.
    fn take(&mut self, msg: &mut Option<Msg>) -> bool {
        match msg.take() {
            Some(Msg::Event(ev)) => self.push(ev),
            Some(Msg::Expect(t)) => *self.expected.entry(t).or_default() += 1,
            Some(Msg::Expected(t)) => {
                if let Some(n) = self.expected.get_mut(&t) {
                    *n -= 1;
                    if *n == 0 {
                        self.expected.remove(&t);
                    }
                }
            }
            other => {
                *msg = other;
                return false;
            }
        }
        true
    }

    /// The first stamp not to render yet: the oldest event still expected (unless it is
    /// older than [`MAX_EXPECT`]).
    fn bound(&self, now_ns: u64) -> u64 {
        self.expected
            .keys()
            .next()
            .filter(|&&t| now_ns.saturating_sub(t) < MAX_EXPECT.as_nanos() as u64)
            .copied()
            .unwrap_or(u64::MAX)
    }

    /// Hand `render`, in stamp order, every event stamped at least `hold` ns before `now`
    /// (all of them with `now == u64::MAX`).
    fn release(
        &mut self,
        now: u64,
        hold: u64,
        render: &mut dyn FnMut(&Event) -> io::Result<()>,
    ) -> io::Result<()> {
        let bound = self.bound(crate::event::now_ns());
        while let Some(entry) = self.events.first_entry() {
            if now != u64::MAX && entry.key().0.saturating_add(hold) > now {
                break;
            }
            if entry.key().0 >= bound {
                break;
            }
            render(&entry.remove())?;
        }
        Ok(())
    }
}

/// Before a pause or a flush writes everything out: events stamped before this moment
/// may still be on their way (a child's line, the observer's sample), so take them in
/// for `hold` ns first ([`PAUSE_HOLD`], longer when children's news has come late), and what the pause writes is in stamp order with what comes
/// after it. A pause or flush that comes meanwhile is handed back, for its turn.
fn take_in_flight(rx: &mpsc::Receiver<Msg>, held: &mut Held, hold: u64) -> Option<Msg> {
    let until = crate::event::now_ns() + hold;
    loop {
        let left = until.saturating_sub(crate::event::now_ns());
        if left == 0 {
            return None;
        }
        match rx.recv_timeout(Duration::from_nanos(left)) {
            Ok(msg) => {
                let mut msg = Some(msg);
                if !held.take(&mut msg) {
                    return msg;
                }
            }
            Err(_) => return None,
        }
    }
}

/// The output failed: stop the run, for the reason the error means. A closed pipe
/// (`| head -1`) ends it quietly; EIO is a terminal that hung up, which ends it as SIGHUP
/// does (the signal thread kills the children); anything else (`>/dev/full`: ENOSPC) is
/// a failed run, exit 1, with the error named.
fn output_failed(e: &io::Error) {
    use crate::procs;
    match e.kind() {
        io::ErrorKind::BrokenPipe => procs::request_stop(procs::STOP_BROKEN_PIPE),
        _ if e.raw_os_error() == Some(nix::libc::EIO) => {
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGHUP);
            procs::request_stop(nix::libc::SIGHUP);
        }
        // A renderer that named its output (the trace file) said it all already.
        _ if e.get_ref().is_some() => procs::fail_run(e.to_string()),
        _ => procs::fail_run(format!("writing the narration to stdout failed: {e}")),
    }
}

/// The renderer thread and the sink that feeds it.
pub struct Narrator {
    sink: Sink,
    thread: Option<JoinHandle<()>>,
}

impl Narrator {
    /// Start the renderer thread. With `step_prompt`, every pause waits for a key.
    pub fn start(
        mut render: Box<dyn Render>,
        step_prompt: Option<String>,
    ) -> anyhow::Result<Narrator> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let reader = Arc::new(Reader::default());
        reader.state().prompting = step_prompt.is_some();
        let read = reader.clone();
        let late = Arc::new(Late::default());
        let held_for = late.clone();
        let thread = crate::procs::thread("narrator", move || {
            // Once the output is closed, keep draining so senders never block, but
            // write nothing more.
            let mut open = true;
            let mut held = Held::default();
            // A pause or flush that came while the one before it waited out its hold.
            let mut deferred: Option<Msg> = None;
            loop {
                // Everything held goes out before a pause or a flush; otherwise once it is
                // old enough that no earlier event can still be on its way.
                let next = match deferred.take() {
                    Some(msg) => Ok(msg),
                    None => rx.recv_timeout(WAKE),
                };
                let quiet = matches!(next, Err(mpsc::RecvTimeoutError::Timeout));
                let (msg, until) = match next {
                    Ok(msg @ (Msg::Event(_) | Msg::Expect(_) | Msg::Expected(_))) => {
                        held.take(&mut Some(msg));
                        (None, crate::event::now_ns())
                    }
                    Ok(msg) => {
                        deferred = take_in_flight(&rx, &mut held, held_for.hold(PAUSE_HOLD));
                        (Some(msg), u64::MAX)
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Quiet for a while (a reading pause): is anyone still reading?
                        if open {
                            if let Some(e) = crate::sys::fd::reader_gone(std::io::stdout().as_fd())
                            {
                                output_failed(&io::Error::from_raw_os_error(e as i32));
                                open = false;
                            }
                        }
                        (None, crate::event::now_ns())
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let released = held
                    .release(until, held_for.hold(HOLD), &mut |ev| match open {
                        true => render.event(ev),
                        false => Ok(()),
                    })
                    .and_then(|()| match (open && quiet, held.events.is_empty()) {
                        (true, true) => render.tick(until),
                        _ => Ok(()),
                    });
                let result = match msg {
                    None | Some(Msg::Event(_) | Msg::Expect(_) | Msg::Expected(_)) => Ok(()),
                    Some(Msg::Pause(ack)) => {
                        let go = if !open {
                            Ok(true)
                        } else {
                            render.flush().and_then(|()| match &step_prompt {
                                Some(prompt) => {
                                    let go = render.suspended(&mut || crate::term::pause(prompt));
                                    read.caught_up();
                                    go
                                }
                                None => Ok(true),
                            })
                        };
                        let (go, r) = match go {
                            Ok(g) => (g, Ok(())),
                            Err(e) => (true, Err(e)),
                        };
                        let _ = ack.send(go);
                        r
                    }
                    Some(Msg::Flush(ack)) => {
                        let r = if open { render.flush() } else { Ok(()) };
                        let _ = ack.send(true);
                        r
                    }
                };
                if let Err(e) = released.and(result) {
                    if open {
                        output_failed(&e);
                    }
                    open = false;
                }
            }
            if open {
                // The end: nothing more can come, expected or not.
                held.expected.clear();
                if let Err(e) = held
                    .release(u64::MAX, 0, &mut |ev| render.event(ev))
                    .and_then(|()| render.finish())
                {
                    output_failed(&e);
                }
            } else {
                // The narration's output closed (`| head -1`) or failed, and the run
                // stopped for it: the trace file still gets what was rendered so far
                // (the narration's own finish fails again, and says nothing more).
                let _ = render.finish();
            }
        })?;
        Ok(Narrator {
            sink: Sink(tx, reader, late),
            thread: Some(thread),
        })
    }

    pub fn sink(&self) -> Sink {
        self.sink.clone()
    }

    /// Write everything out and end the thread (all other sinks must be dropped first).
    pub fn finish(mut self) {
        self.sink.flush();
        let none = Sink(mpsc::channel().0, Arc::default(), Arc::default());
        drop(std::mem::replace(&mut self.sink, none));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    fn ev(t_ns: u64, pid: i32) -> Event {
        Event {
            t_ns,
            pid,
            kind: Kind::LessonEnd {
                ok: true,
                elapsed_ms: 0.0,
                error: None,
                signal: None,
            },
        }
    }

    #[test]
    fn reading_time_counts_words_and_chinese_characters() {
        let secs = |t: &str| reading_time(t).as_secs_f64();
        assert!((secs(&"word ".repeat(25)) - 6.0).abs() < 1e-9);
        assert!((secs(&"字".repeat(40)) - 6.0).abs() < 1e-9);
        // Mixed: the Latin words and the characters; punctuation is no word.
        assert!((secs(&format!("{} PID 4851 · →", "字".repeat(40))) - 6.48).abs() < 1e-9);
        assert_eq!(reading_time("ok"), READ_FLOOR);
    }

    #[test]
    fn the_reader_reads_in_order_scaled_and_only_say_and_step() {
        let reader = Reader::default();
        let say = |t_ns: u64| Event {
            t_ns,
            pid: 1,
            kind: Kind::Say {
                key: "k".into(),
                text: "word ".repeat(25),
                python: None,
                syscall: None,
            },
        };
        reader.heard(&say(1_000));
        assert_eq!(reader.state().done_ns, 0, "--speed 0 counts nothing");
        reader.state().speed = 0.5;
        reader.heard(&say(1_000));
        assert_eq!(reader.state().done_ns, 1_000 + 3_000_000_000);
        // A line that appears while the reader is still busy is read after it.
        reader.heard(&say(2_000));
        assert_eq!(reader.state().done_ns, 1_000 + 6_000_000_000);
        reader.heard(&ev(3_000, 1));
        assert_eq!(reader.state().done_ns, 1_000 + 6_000_000_000, "not a line");
    }

    #[test]
    fn held_events_come_out_in_stamp_order_once_old_enough() {
        let mut held = Held::default();
        let hold = HOLD.as_nanos() as u64;
        // Arrival order 2, 1, 3 (1 came late over a channel); 3 is too recent yet.
        held.push(ev(2_000, 2));
        held.push(ev(1_000, 1));
        held.push(ev(1_000 + hold + 500, 3));
        let mut out = Vec::new();
        held.release(2_000 + hold, hold, &mut |e| {
            out.push(e.pid);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![1, 2]);
        held.release(u64::MAX, hold, &mut |e| {
            out.push(e.pid);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn nothing_stamped_after_an_expected_event_comes_out_before_it() {
        let mut held = Held::default();
        let now = crate::event::now_ns();
        let mut out = Vec::new();
        let take = |held: &mut Held, msg: Msg| assert!(held.take(&mut Some(msg)));
        // A spawn stamped at `now` is expected; the observer's sample at now + 1 comes
        // first, and stays held even by a pause (which releases everything else).
        take(&mut held, Msg::Expect(now));
        take(&mut held, Msg::Event(ev(now - 1, 1)));
        take(&mut held, Msg::Event(ev(now + 1, 3)));
        held.release(u64::MAX, 0, &mut |e| {
            out.push(e.pid);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![1]);
        take(&mut held, Msg::Event(ev(now, 2)));
        take(&mut held, Msg::Expected(now));
        held.release(u64::MAX, 0, &mut |e| {
            out.push(e.pid);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![1, 2, 3]);
        // An expectation never met holds nothing back once it is MAX_EXPECT old.
        take(
            &mut held,
            Msg::Expect(now - MAX_EXPECT.as_nanos() as u64 - 1),
        );
        take(&mut held, Msg::Event(ev(now, 4)));
        held.release(u64::MAX, 0, &mut |e| {
            out.push(e.pid);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![1, 2, 3, 4]);
    }
}
