//! The scheduling priority of threads that work beside the single writer. Every append waits
//! for the writer, so on a machine whose cores are all busy it should never wait for a core:
//! threads whose work can wait run a few steps of nice below it. Best effort: where a
//! priority cannot be lowered (not Linux, or already the lowest), the thread runs as it is.

/// Steps of nice between the writer and a thread that prepares events for it. With equal
/// weights the scheduler shared the cores evenly among the preparers and the writer, the
/// writer fell a pipeline's depth behind, the preparers then stopped on a full queue, and one
/// core sat idle while the writer caught up: 7–8% of two cores over a bulk append.
const PREPARING: i32 = 3;

/// Steps of nice between the writer and the compressor of sealed segments, whose work can
/// wait until the cores are free.
pub(crate) const COMPRESSING: i32 = 10;

/// Lowers the calling thread's priority to that of a thread preparing events for the writer
/// (the CLI's preparers, a benchmark's producers).
pub fn prepare_below_the_writer() {
    lower_this_thread(PREPARING);
}

/// Lowers the calling thread's priority by `steps` of nice, to 19 at most.
pub(crate) fn lower_this_thread(steps: i32) {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: `gettid` has no preconditions, and `getpriority` and `setpriority` of this
    // thread's own id only read and change its scheduling weight (on Linux a thread's id
    // names that thread alone).
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(libc::PRIO_PROCESS, tid, (now + steps).min(19));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The calling thread's nice, from `/proc/thread-self/stat` (the 19th field, the 17th
    /// after the name, which may hold spaces).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let (_, rest) = stat.rsplit_once(')').expect("a name");
        rest.split_whitespace()
            .nth(16)
            .expect("nice")
            .parse()
            .expect("a number")
    }

    #[test]
    fn a_preparing_thread_runs_three_steps_below_its_creator_and_never_past_the_lowest() {
        std::thread::spawn(|| {
            let before = own_nice();
            super::prepare_below_the_writer();
            assert_eq!(own_nice(), (before + 3).min(19));
            for _ in 0..8 {
                super::prepare_below_the_writer();
            }
            assert_eq!(own_nice(), 19);
        })
        .join()
        .expect("the thread's checks");
        // Only the thread that asked was lowered.
        let here = own_nice();
        std::thread::spawn(move || assert_eq!(own_nice(), here))
            .join()
            .expect("a fresh thread's priority");
    }
}
