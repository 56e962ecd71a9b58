//! A page of memory shared by processes (`mmap(MAP_SHARED)`): CPython's `Value` and
//! `Array` live in one (an unlinked file of `/dev/shm`, mapped by each process), and so
//! do this program's `shared` counter and `event` flag (a file in the run's directory)
//! and `isolation`'s contrast to copy-on-write (an anonymous page that fork shares).
//!
//! One place for the mapping and its SAFETY reasoning: `Shared<T>` hands out only `&T`,
//! and `T` must be a [`SharedPage`], a type made of atomics and `UnsafeCell`s for which
//! all-zero bytes are a valid value (a new file, or a new anonymous page, is zeros).

use anyhow::{Context, Result};
use nix::sys::mman::{madvise, mmap, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags};
use std::ffi::c_void;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::Path;
use std::ptr::NonNull;

/// The size of every mapping here: one page, which every `SharedPage` must fit.
pub const PAGE: usize = 4096;

/// A type that may live in a shared page.
///
/// # Safety
/// All-zero bytes must be a valid value, it must fit in [`PAGE`] bytes with an alignment
/// a page satisfies, and every field must allow writes by other processes through a
/// shared reference: atomics, or `UnsafeCell`s used only through system calls made for
/// that (a `pshared` semaphore).
pub unsafe trait SharedPage: Sync {}

/// A mapping of one page shared with other processes, unmapped when dropped.
pub struct Shared<T: SharedPage> {
    ptr: NonNull<c_void>,
    /// The file behind the mapping, kept open while it is mapped (the mapping alone
    /// would do; held, the file also shows among the process's descriptors).
    _file: Option<File>,
    _page: std::marker::PhantomData<T>,
}

// SAFETY: the page is only reached through `&T`, and `T: Sync` (a `SharedPage`).
unsafe impl<T: SharedPage> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: SharedPage> Sync for Shared<T> {}

impl<T: SharedPage> Shared<T> {
    const FITS: () = assert!(std::mem::size_of::<T>() <= PAGE && std::mem::align_of::<T>() <= PAGE);

    /// A new file at `path` (mode 0600, it must not exist), one page of zeros, space
    /// allocated (`posix_fallocate`: a full filesystem is ENOSPC here, not SIGBUS at the
    /// first write), then mapped.
    pub fn create(path: &Path) -> Result<Shared<T>> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        crate::procs::allocate(&file, PAGE, path)?;
        Shared::map_file(file, path)
    }

    /// Map the page another process created at `path`.
    pub fn open(path: &Path) -> Result<Shared<T>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Shared::map_file(file, path)
    }

    fn map_file(file: File, path: &Path) -> Result<Shared<T>> {
        let () = Self::FITS;
        // SAFETY: a new shared mapping of a file at least PAGE long (allocated by its
        // creator); nothing in this process aliases it but the `&T` of `get`, which a
        // `SharedPage` allows other processes to write through. The file stays open.
        let ptr = unsafe {
            mmap(
                None,
                NonZeroUsize::new(PAGE).expect("non-zero"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &file,
                0,
            )
        }
        .with_context(|| format!("mmap(MAP_SHARED) of {}", path.display()))?;
        Ok(Shared {
            ptr,
            _file: Some(file),
            _page: std::marker::PhantomData,
        })
    }

    /// An anonymous shared page (`MAP_SHARED | MAP_ANONYMOUS`), zeroed: shared with the
    /// children this process forks from now on, at the same address.
    pub fn anonymous() -> Result<Shared<T>> {
        let () = Self::FITS;
        // SAFETY: a fresh anonymous mapping, zero-filled by the kernel, aliased by nothing.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                NonZeroUsize::new(PAGE).expect("non-zero"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .context("mmap(MAP_SHARED | MAP_ANONYMOUS)")?;
        Ok(Shared {
            ptr,
            _file: None,
            _page: std::marker::PhantomData,
        })
    }

    /// What lives in the page.
    pub fn get(&self) -> &T {
        // SAFETY: the mapping is live while `self` is, page-aligned and large enough
        // (`FITS`), zero-initialised (a valid `T`: `SharedPage`), and `T` tolerates
        // writes by other processes through `&T`.
        unsafe { self.ptr.cast::<T>().as_ref() }
    }

    /// The page's address in this process.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl<T: SharedPage> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping was made with PAGE bytes, and no `&T` from `get` outlives
        // `self`.
        let _ = unsafe { munmap(self.ptr, PAGE) };
    }
}

/// A page no one may touch (`PROT_NONE`): a store to it is a fault the kernel answers
/// with SIGSEGV. The `states` lesson's fatal child writes to one on purpose.
pub struct NoAccessPage {
    ptr: NonNull<c_void>,
}

impl NoAccessPage {
    pub fn new() -> Result<NoAccessPage> {
        // SAFETY: a fresh private anonymous mapping with no access rights; no Rust
        // reference ever points into it.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                NonZeroUsize::new(PAGE).expect("non-zero"),
                ProtFlags::PROT_NONE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .context("mmap(PROT_NONE)")?;
        Ok(NoAccessPage { ptr })
    }

    /// Its address, for a child to fault on.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl Drop for NoAccessPage {
    fn drop(&mut self) {
        // SAFETY: the mapping was made with PAGE bytes; nothing refers into it.
        let _ = unsafe { munmap(self.ptr, PAGE) };
    }
}

// SAFETY: an atomic is valid when zero and may be written by others through `&`.
unsafe impl SharedPage for std::sync::atomic::AtomicI64 {}

/// Private memory of this process, every page of it written once, so that the kernel
/// really holds it (and a `fork()` has its page tables to copy): what a parent that has
/// grown to that size looks like. In small pages (`MADV_NOHUGEPAGE`), one page-table
/// entry each, as most of a heap is. Unmapped when dropped.
pub struct Touched {
    ptr: NonNull<c_void>,
    len: usize,
}

impl Touched {
    pub fn new(bytes: usize) -> Result<Touched> {
        let len = NonZeroUsize::new(bytes.max(PAGE)).expect("non-zero");
        // SAFETY: a fresh private anonymous mapping, zero-filled by the kernel, aliased by
        // nothing; only this struct refers into it.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .context("mmap(MAP_PRIVATE | MAP_ANONYMOUS)")?;
        let len = len.get();
        // Small pages; a kernel without transparent huge pages refuses the advice, and
        // then every page is small anyway.
        // SAFETY: advice on the whole of the mapping just made.
        let _ = unsafe { madvise(ptr, len, MmapAdvise::MADV_NOHUGEPAGE) };
        let bytes = ptr.as_ptr().cast::<u8>();
        for offset in (0..len).step_by(PAGE) {
            // SAFETY: `offset` < `len`, inside the writable mapping; a volatile write so
            // that the store (and the page it makes the kernel allocate) is not elided.
            unsafe { bytes.add(offset).write_volatile(1) };
        }
        Ok(Touched { ptr, len })
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        // SAFETY: the mapping was made with `len` bytes; nothing refers into it.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn two_mappings_of_one_file_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("page");
        let a = Shared::<AtomicI64>::create(&path).unwrap();
        let b = Shared::<AtomicI64>::open(&path).unwrap();
        assert_ne!(a.addr(), b.addr());
        a.get().store(42, Ordering::SeqCst);
        assert_eq!(b.get().load(Ordering::SeqCst), 42);
        assert!(
            Shared::<AtomicI64>::create(&path).is_err(),
            "never an old file"
        );
    }
}
