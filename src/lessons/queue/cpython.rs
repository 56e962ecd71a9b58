//! CPython's `Queue` and `JoinableQueue`, part by part: the pipe, the reader and writer
//! locks, the `BoundedSemaphore`, the unfinished-task count and the `Condition`.

use crate::event::now_ns;
use crate::sys::fd;
use crate::sys::flock::FileLock;
use crate::sys::sem::NamedSem;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// CPython's `SemLock` on Linux is a POSIX named semaphore.
pub(super) type Sem = NamedSem;

/// `sem_getvalue`, where the kernel tells it.
pub(super) fn count(sem: &Sem) -> Result<i32> {
    i32::try_from(sem.value())
        .ok()
        .filter(|v| *v >= 0)
        .context("sem_getvalue() failed")
}

/// An item as bytes: its JSON (CPython pickles). `None` is the sentinel.
pub(super) fn encode(item: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&item).expect("a string always serialises")
}

pub(super) fn decode(bytes: &[u8]) -> Result<Option<String>> {
    serde_json::from_slice(bytes).context("an item in the pipe is not valid JSON")
}

/// Python's name for an item: `'p1.0'`, or `None`.
pub(super) fn py_item(item: Option<&str>) -> String {
    item.map_or_else(|| "None".to_string(), str::to_string)
}

pub(super) fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// CPython's `multiprocessing.Condition`: a lock and three semaphores. A sleeper counts
/// itself in `sleeping`, releases the lock and sleeps on `wait`; a notifier posts `wait`
/// once per sleeper and waits until each has counted itself in `woken`.
pub(super) struct Condition {
    pub(super) lock: FileLock,
    pub(super) sleeping: Sem,
    pub(super) woken: Sem,
    pub(super) wait: Sem,
}

impl Condition {
    /// `cond.wait()`, with the lock held: sleep until notified, then hold it again.
    pub(super) fn wait(&self) -> Result<()> {
        self.sleeping.post()?;
        self.lock.unlock()?;
        let slept = self.wait.wait();
        self.woken.post()?;
        self.lock.lock()?;
        slept
    }

    /// `cond.notify_all()`, with the lock held.
    pub(super) fn notify_all(&self) -> Result<()> {
        // Sleepers that timed out since the last notify have counted themselves woken.
        while self.woken.try_wait()? {
            self.sleeping.try_wait()?;
        }
        let mut sleepers = 0;
        while self.sleeping.try_wait()? {
            self.wait.post()?;
            sleepers += 1;
        }
        for _ in 0..sleepers {
            self.woken.wait()?;
        }
        while self.wait.try_wait()? {}
        Ok(())
    }
}

/// What `JoinableQueue` adds to `Queue`.
pub(super) struct Joinable {
    /// `Semaphore(0)`: +1 at every put, -1 at every task_done.
    pub(super) unfinished: Sem,
    pub(super) cond: Condition,
}

/// What a `get` took out of the queue.
pub(super) struct Got {
    pub(super) item: Option<String>,
    /// When its bytes had been read: stamped before its slot was freed, so a put that the
    /// freed slot lets in is always stamped later.
    pub(super) t_ns: u64,
    /// `qsize()` once this item was out (counted before its slot was handed back, so a
    /// producer's refill is not mistaken for this item).
    pub(super) size: i32,
}

/// `multiprocessing.Queue`, CPython's way.
pub(super) struct Queue {
    pub(super) maxsize: i32,
    pub(super) reader: OwnedFd,
    pub(super) writer: OwnedFd,
    pub(super) rlock: FileLock,
    pub(super) wlock: FileLock,
    /// `BoundedSemaphore(maxsize)`: the free slots.
    pub(super) slots: Sem,
    pub(super) joinable: Option<Joinable>,
}

impl Queue {
    /// `q.put(item)`: take a slot (sleeping while there is none), then write the item's
    /// bytes into the pipe under the writer lock. (CPython hands the item to a feeder
    /// thread that does the writing; here `put` writes itself.)
    pub(super) fn put(&self, item: Option<&str>) -> Result<()> {
        self.slots.wait()?;
        match &self.joinable {
            None => self.write_item(item),
            Some(j) => {
                j.cond.lock.lock()?;
                let r = self.write_item(item).and_then(|()| j.unfinished.post());
                j.cond.lock.unlock()?;
                r
            }
        }
    }

    /// `q.put_nowait(item)`: false where Python raises `queue.Full`.
    pub(super) fn put_nowait(&self, item: Option<&str>) -> Result<bool> {
        if !self.slots.try_wait()? {
            return Ok(false);
        }
        self.write_item(item)?;
        Ok(true)
    }

    pub(super) fn write_item(&self, item: Option<&str>) -> Result<()> {
        let body = encode(item);
        let mut msg = (body.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        self.wlock.lock()?;
        let r = fd::write_all(self.writer.as_fd(), &msg).context("writing to the queue's pipe");
        self.wlock.unlock()?;
        r
    }

    /// `q.get()`: under the reader lock, read one item's bytes (sleeping in `read` while
    /// the pipe is empty), then free its slot.
    pub(super) fn get(&self) -> Result<Got> {
        self.rlock.lock()?;
        let r = self.read_item();
        self.rlock.unlock()?;
        r
    }

    /// `q.get_nowait()`: `None` where Python raises `queue.Empty`.
    pub(super) fn get_nowait(&self) -> Result<Option<Got>> {
        if !self.rlock.try_lock()? {
            return Ok(None);
        }
        let r = match fd::readable(self.reader.as_fd()).context("poll() on the queue's pipe") {
            Ok(true) => self.read_item().map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        self.rlock.unlock()?;
        r
    }

    pub(super) fn read_item(&self) -> Result<Got> {
        let mut head = [0u8; 4];
        fd::read_exact(self.reader.as_fd(), &mut head).context("reading the queue's pipe")?;
        let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
        fd::read_exact(self.reader.as_fd(), &mut body).context("reading the queue's pipe")?;
        let t_ns = now_ns();
        let free = count(&self.slots)?;
        // BoundedSemaphore.release(): never above its initial value.
        if free >= self.maxsize {
            bail!("ValueError: semaphore or lock released too many times");
        }
        self.slots.post()?;
        Ok(Got {
            item: decode(&body)?,
            t_ns,
            size: self.maxsize - free - 1,
        })
    }

    /// `q.qsize()`: maxsize minus the free slots.
    pub(super) fn qsize(&self) -> Result<i32> {
        Ok(self.maxsize - count(&self.slots)?)
    }

    /// `q.empty()`: no byte waiting in the pipe.
    pub(super) fn empty(&self) -> Result<bool> {
        Ok(!fd::readable(self.reader.as_fd()).context("poll() on the queue's pipe")?)
    }

    /// `q.full()`: no free slot.
    pub(super) fn full(&self) -> Result<bool> {
        Ok(count(&self.slots)? == 0)
    }

    pub(super) fn joinable(&self) -> Result<&Joinable> {
        self.joinable
            .as_ref()
            .ok_or_else(|| anyhow!("a plain Queue has no task_done() or join()"))
    }

    /// `q.task_done()`: false where Python raises
    /// `ValueError: task_done() called too many times`.
    pub(super) fn task_done(&self) -> Result<bool> {
        let j = self.joinable()?;
        j.cond.lock.lock()?;
        let r = (|| {
            if !j.unfinished.try_wait()? {
                return Ok(false);
            }
            if count(&j.unfinished)? == 0 {
                j.cond.notify_all()?;
            }
            Ok(true)
        })();
        j.cond.lock.unlock()?;
        r
    }

    /// `q.join()`: sleep on the condition until no task is unfinished.
    pub(super) fn join(&self) -> Result<()> {
        let j = self.joinable()?;
        j.cond.lock.lock()?;
        let r = if count(&j.unfinished)? != 0 {
            j.cond.wait()
        } else {
            Ok(())
        };
        j.cond.lock.unlock()?;
        r
    }

    pub(super) fn unfinished(&self) -> Result<i32> {
        count(&self.joinable()?.unfinished)
    }
}

/// What a child tells the parent, in order: it has opened the queue's semaphores; a
/// producer is about to put item `k`, has put its `items`, has put the sentinels; a
/// consumer has met its sentinel after `got` items; the JoinableQueue's producer calls
/// `join()`, and `join()` returned at `t_ns`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    Opened,
    Put {
        k: i64,
    },
    Done {
        items: i64,
    },
    Sentinels,
    Stop {
        got: i64,
    },
    /// A consumer took `item` (its code, [`super::children::item_code`]) at `t_ns`; a
    /// JoinableQueue worker called `task_done()` for it at `t_ns`. On the same channel as
    /// the child's events, after them: when the lesson has this, the narrator has the
    /// event it follows, and what the lesson says next comes after it in the stream.
    Got {
        t_ns: u64,
        item: i64,
    },
    Join,
    Joined {
        t_ns: u64,
    },
}

/// The semaphore names a child must open, sent to it once it is running.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct SemNamesMsg {
    pub(super) slots: String,
    pub(super) unfinished: Option<String>,
    pub(super) sleeping: Option<String>,
    pub(super) woken: Option<String>,
    pub(super) wait: Option<String>,
}

/// The files a queue's locks live in (in the run's private directory), removed when the
/// part of the lesson that used them is over.
pub(super) struct LockFiles(pub(super) Vec<PathBuf>);

impl Drop for LockFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
