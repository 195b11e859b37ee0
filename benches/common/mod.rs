//! Shared by the benches: the CPU time of the calling thread. The benchmark machine is shared,
//! so wall-clock times include waits for a core; single-threaded work measured on its own
//! thread's CPU clock gives the cost on one uncontended core.

use std::time::Duration;

/// CPU time consumed so far by the calling thread (POSIX CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant the kernel
    // supports; clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
