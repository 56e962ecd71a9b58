//! The observer: real states, seen from outside.
//!
//! A thread samples `/proc/<pid>/stat` of every process of the lesson and emits a `state`
//! event whenever the kernel's letter changes (`R` running, `S` sleeping, `D` disk wait,
//! `T` stopped, `Z` zombie). "The consumer is blocked" is then the kernel's word, not the
//! lesson's. Lessons can also wait until the kernel says a process reached a state.
//!
//! Cost: one `openat`+`read` per watched process every [`INTERVAL`]; a few microseconds
//! each, so a dozen processes cost well under 1% of a core.

use crate::event::{Event, Kind};
use crate::narrate::Sink;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the observer samples.
pub const INTERVAL: Duration = Duration::from_millis(2);

struct Watched {
    pid: i32,
    name: String,
    proc: Option<crate::sys::proc::Handle>,
    last: Option<char>,
    /// Where it last slept (`/proc/<pid>/wchan`), while its letter is `S` or `D`.
    wchan: Option<String>,
}

impl Watched {
    fn sample(&self) -> Option<char> {
        self.proc.as_ref()?.state()
    }
}

#[derive(Default)]
struct Seen {
    /// The latest letter of each pid (absent: never seen or gone).
    latest: HashMap<i32, char>,
    /// Every letter each pid was ever seen in.
    history: HashMap<i32, HashSet<char>>,
}

struct Inner {
    watched: Mutex<Vec<Watched>>,
    seen: Mutex<Seen>,
    changed: Condvar,
    stop: AtomicBool,
}

/// The sampling thread and what it has seen.
pub struct Observer {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl Observer {
    pub fn start(sink: Sink, lang: crate::words::Lang) -> anyhow::Result<Observer> {
        let inner = Arc::new(Inner {
            watched: Mutex::new(Vec::new()),
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let worker = inner.clone();
        let thread = crate::procs::thread("observer", move || run(&worker, &sink, lang))?;
        Ok(Observer {
            inner,
            thread: Some(thread),
        })
    }

    /// Start watching `pid` under `name`.
    pub fn watch(&self, pid: i32, name: &str) {
        let w = Watched {
            pid,
            name: name.to_string(),
            proc: crate::sys::proc::Handle::open(pid),
            last: None,
            wchan: None,
        };
        lock(&self.inner.watched).push(w);
    }

    /// Stop watching `pid` (it was reaped).
    pub fn forget(&self, pid: i32) {
        lock(&self.inner.watched).retain(|w| w.pid != pid);
        lock(&self.inner.seen).latest.remove(&pid);
    }

    /// Whether the observer ever saw `pid` in `state`.
    pub fn ever(&self, pid: i32, state: char) -> bool {
        lock(&self.inner.seen)
            .history
            .get(&pid)
            .is_some_and(|h| h.contains(&state))
    }

    /// Wait until the observer sees `pid` in one of `states`; the letter seen, or `None`
    /// after `timeout` (or if the run is stopping).
    pub fn wait_for(&self, pid: i32, states: &[char], timeout: Duration) -> Option<char> {
        let deadline = Instant::now() + timeout;
        let mut seen = lock(&self.inner.seen);
        loop {
            if let Some(&s) = seen.latest.get(&pid) {
                if states.contains(&s) {
                    return Some(s);
                }
            }
            let now = Instant::now();
            if now >= deadline || crate::procs::stop_reason().is_some() {
                return None;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            seen = self
                .inner
                .changed
                .wait_timeout(seen, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stop sampling and wait for the thread.
    pub fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every how many samples the run's processes are checked for a stop (about 100 ms).
const STOPPED_EVERY: u32 = 50;
/// A process stopped this long (SIGSTOP, Ctrl-Z of its own, a debugger) is narrated.
const STOPPED_NOTICE: Duration = Duration::from_secs(1);
/// Stopped this long, the lesson gives up: shorter than the lessons' own 5 s bounds on
/// a child's answer, so the message names the stopped process rather than a timeout.
const STOPPED_GIVE_UP: Duration = Duration::from_secs(4);

/// The run's processes seen stopped (`T`), and since when.
///
/// Every wait of a lesson on a child (a `waitpid`, a pipe read, a bootstrap) would wait
/// as long as that child stays stopped; the kernel's `T` is a fact to narrate, not a
/// hang: said after [`STOPPED_NOTICE`] with how to continue it, and after
/// [`STOPPED_GIVE_UP`] the run ends (exit 1, every child killed, which ends every one
/// of those waits). The clock does not run while a `--step` pause waits for a key: the
/// student may be looking at that very `T`.
#[derive(Default)]
struct Stopped {
    since: HashMap<i32, (Instant, bool)>,
}

impl Stopped {
    fn check(&mut self, names: &HashMap<i32, String>, sink: &Sink, lang: crate::words::Lang) {
        if crate::procs::paused() || crate::procs::stop_reason().is_some() {
            self.since.clear();
            return;
        }
        let main = nix::unistd::getpid().as_raw();
        let name = |pid: i32| {
            names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| format!("pid-{pid}"))
        };
        let now = Instant::now();
        let stopped: Vec<i32> = crate::procs::descendants()
            .into_iter()
            .filter(|&pid| matches!(crate::sys::proc::state(pid), Some('T' | 't')))
            .collect();
        // `continued`: it runs again; else it is stopped and the lesson waits.
        let say = |continued: bool, pid: i32| {
            let left = (STOPPED_GIVE_UP - STOPPED_NOTICE).as_secs().to_string();
            let (n, p, secs) = (name(pid), pid.to_string(), left);
            let text = crate::ui!(
                lang,
                if (continued) {
                    "stopped_continued"
                } else {
                    "stopped_notice"
                },
                &[("name", &n), ("pid", &p), ("secs", &secs)],
            );
            let key = if continued {
                "stopped_continued"
            } else {
                "stopped_notice"
            };
            sink.emit(Event::now(
                main,
                Kind::Say {
                    key: key.into(),
                    text,
                    python: None,
                    syscall: None,
                },
            ));
        };
        // Continued in time: say so, and the lesson goes on.
        let gone: Vec<i32> = self
            .since
            .keys()
            .copied()
            .filter(|p| !stopped.contains(p))
            .collect();
        for pid in gone {
            if let Some((_, true)) = self.since.remove(&pid) {
                if crate::procs::alive(pid) {
                    say(true, pid);
                }
            }
        }
        for pid in stopped {
            let (since, told) = self.since.entry(pid).or_insert((now, false));
            let for_how_long = now - *since;
            if !*told && for_how_long >= STOPPED_NOTICE {
                *told = true;
                say(false, pid);
            }
            if for_how_long >= STOPPED_GIVE_UP {
                let (n, p, secs) = (
                    name(pid),
                    pid.to_string(),
                    STOPPED_GIVE_UP.as_secs().to_string(),
                );
                crate::procs::fail_run(crate::ui!(
                    lang,
                    "stopped_gave_up",
                    &[("name", &n), ("pid", &p), ("secs", &secs)],
                ));
                return;
            }
        }
    }
}

/// Every how many samples a sleeping process's wchan is read again: a process can go
/// from one sleep to another between two samples (S, then S somewhere else), and the
/// live view must not keep saying "reading a socket" of one now asleep in sem_wait.
const WCHAN_EVERY: u32 = 10;

fn run(inner: &Inner, sink: &Sink, lang: crate::words::Lang) {
    let mut tick = 0_u32;
    let mut stopped = Stopped::default();
    while !inner.stop.load(Ordering::SeqCst) {
        tick = tick.wrapping_add(1);
        if tick.is_multiple_of(STOPPED_EVERY) {
            let names: HashMap<i32, String> = lock(&inner.watched)
                .iter()
                .map(|w| (w.pid, w.name.clone()))
                .collect();
            stopped.check(&names, sink, lang);
            crate::procs::mind_janitor();
        }
        let mut changes = Vec::new();
        {
            let mut watched = lock(&inner.watched);
            for w in watched.iter_mut() {
                let now = w.sample();
                let asleep = matches!(now, Some('S' | 'D'));
                if now != w.last {
                    if let Some(to) = now {
                        // Stamped when sampled: a lesson woken by this change acts after it.
                        let t = crate::event::now_ns();
                        w.wchan = asleep.then(|| crate::sys::proc::wchan(w.pid)).flatten();
                        changes.push((t, w.pid, w.name.clone(), w.last, to, w.wchan.clone()));
                    }
                    w.last = now;
                } else if asleep && tick.is_multiple_of(WCHAN_EVERY) {
                    let t = crate::event::now_ns();
                    let wchan = crate::sys::proc::wchan(w.pid);
                    if wchan.is_some() && wchan != w.wchan {
                        w.wchan = wchan;
                        let to = now.unwrap_or('S');
                        changes.push((t, w.pid, w.name.clone(), now, to, w.wchan.clone()));
                    }
                }
            }
            // A process that vanished without being reaped by the lesson (a daemon's
            // grandchild reaped by someone else) is no longer worth sampling.
            watched.retain(|w| w.last.is_some());
        }
        if !changes.is_empty() {
            {
                let mut seen = lock(&inner.seen);
                for (_, pid, _, _, to, _) in &changes {
                    seen.latest.insert(*pid, *to);
                    seen.history.entry(*pid).or_default().insert(*to);
                }
            }
            inner.changed.notify_all();
            for (t_ns, pid, name, from, to, waiting_in) in changes {
                sink.emit(Event {
                    t_ns,
                    pid,
                    kind: Kind::State {
                        name,
                        from: from.map(String::from).unwrap_or_default(),
                        to: to.to_string(),
                        waiting_in,
                    },
                });
            }
        }
        std::thread::sleep(INTERVAL);
    }
}
