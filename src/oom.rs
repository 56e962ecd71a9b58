//! Out of memory is one clear line and exit 1, not Rust's abort ("memory allocation of
//! 7 bytes failed", SIGABRT, exit 134; found by the fault suite under a low `ulimit -v`).
//!
//! The global allocator is the system's, watched: when an allocation fails it writes
//! one line naming ENOMEM and RLIMIT_AS (formatted on the stack: nothing may allocate
//! now) and `_exit(1)`s. Nothing is left behind: the children die with this process
//! (`PR_SET_PDEATHSIG`) and the janitor removes the run's directory.

use std::alloc::{GlobalAlloc, Layout, System};

pub struct Watched;

// SAFETY: every call is forwarded to `System` unchanged; only a null result is acted on.
unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's promises for `layout` are passed on.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with this layout.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}

/// A fixed buffer that `write!` can fill without allocating.
struct StackLine {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn out_of_memory(size: usize) -> ! {
    use std::fmt::Write;
    let mut line = StackLine {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(
        line,
        "mp-demo: error: allocating {size} bytes failed: ENOMEM: out of memory"
    );
    if let Some(limit) = crate::procs::soft_limit(nix::libc::RLIMIT_AS) {
        let _ = write!(
            line,
            ": the address-space limit (RLIMIT_AS, `ulimit -v`: {} KiB) is reached",
            limit / 1024
        );
    }
    let _ = line.write_str("\n");
    // SAFETY: write(2) and _exit(2) of our own buffer; neither allocates.
    unsafe {
        nix::libc::write(2, line.buf.as_ptr().cast(), line.len);
        nix::libc::_exit(1)
    }
}
