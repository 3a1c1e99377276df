//! The allocator's settings, made before any thread starts.

/// Allocations of at least this many bytes get pages of their own, given
/// back when freed. glibc otherwise raises this threshold up to 32 MiB as
/// large blocks are freed, then keeps such blocks in each thread's arena:
/// a refresh whose merge runs beside its SQLite writer held about 30 MiB
/// more that way (78 MiB peak instead of 48 MiB for 1M rows).
pub const LARGE_ALLOCATION_BYTES: usize = 1024 * 1024;

/// Fix glibc's threshold for large allocations (see
/// [`LARGE_ALLOCATION_BYTES`]); elsewhere nothing to do.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = libc::c_int::try_from(LARGE_ALLOCATION_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` only sets a parameter of the allocator; it is
        // called before any other thread exists. A refusal (0) leaves
        // glibc's default, which is only less frugal.
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) };
        if set == 0 {
            tracing::debug!("the allocator refused a fixed large-allocation threshold");
        }
    }
}
