//! The process heap as the C allocator sees it (glibc on Linux): how many bytes are in use, and
//! handing freed memory back to the system after a restore.
//!
//! A restore reads a whole events partition; the records it decodes are freed when it ends, but
//! glibc keeps freed pages in the process unless asked to return them, so the resident size
//! would keep the peak of the largest restore instead of the state the processor holds.
//!
//! The one module of Logbook with `unsafe` code: two calls into glibc that read counters and
//! release free pages, with no invariant for the caller to keep.
#![allow(unsafe_code)]

/// Bytes the allocator has handed out and not got back (`mallinfo2`: small blocks plus
/// mmapped ones); `None` where that cannot be asked.
pub fn heap_in_use() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Returns the free pages of the heap to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_heap_in_use_grows_with_an_allocation() {
        let Some(before) = super::heap_in_use() else {
            return; // not glibc: nothing to ask
        };
        // other tests allocate and free meanwhile (the counters are the process's): a block
        // far larger than theirs shows anyway
        let block = vec![1u8; 64 << 20];
        let during = super::heap_in_use().expect("glibc");
        assert!(during >= before + (32 << 20), "{before} -> {during}");
        drop(block);
        super::trim();
    }
}
