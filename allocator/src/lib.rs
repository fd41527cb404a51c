//! The process allocator: mimalloc, with freed memory handed back to the system promptly.
//!
//! A worker's request path allocates and frees many small, short-lived buffers across its
//! threads; mimalloc serves those with far less CPU than the system allocator. When idle
//! sessions are parked, the memory they held is freed in bulk; mimalloc returns ("purges")
//! freed pages to the system after a delay, and with its default of one second, pages freed
//! while the process stays busy were kept for good (a worker that had parked 10,000
//! sessions kept about a gigabyte). Ten milliseconds hands them back within moments, at no
//! CPU cost measurable on the request path (BENCHMARKS.md, "Memory per session").

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (`include/mimalloc.h`); the Rust
/// binding names no constant for it. [`purge_delay`] checks it by its default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds before freed memory is handed back, unless `MIMALLOC_PURGE_DELAY` says
/// otherwise.
pub const PURGE_DELAY_MS: i64 = 10;

/// Sets the allocator's defaults for this process; call first thing in `main`. An operator's
/// `MIMALLOC_PURGE_DELAY` still wins.
pub fn configure() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set_default` only stores a value in mimalloc's option table (an
    // in-range index, checked again by mimalloc) and may be called at any time.
    unsafe {
        libmimalloc_sys::mi_option_set_default(PURGE_DELAY, PURGE_DELAY_MS as _);
    }
}

/// The purge delay in force, in milliseconds.
pub fn purge_delay() -> i64 {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` reads mimalloc's option table (reading `MIMALLOC_*` from the
    // environment the first time), for an in-range index.
    let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    // `c_long` is 64 bits here but 32 on some targets.
    #[allow(clippy::useless_conversion)]
    i64::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, so the order of reads is fixed within the process.
    #[test]
    fn configure_shortens_the_purge_delay_and_the_index_names_that_option() {
        // mimalloc 3 defaults the purge delay to 1000 ms and no other option to that value:
        // the index in `PURGE_DELAY` is the purge delay's.
        assert_eq!(purge_delay(), 1000);
        configure();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
