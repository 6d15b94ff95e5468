//! A bounded pool of scoped threads for independent pieces of work
//! (installing modules, transferring blobs): at most `jobs` at once, the
//! first error stops new work and is returned.
//!
//! Owns: scheduling only. Must not: know what the work is.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Result;

/// Runs `f` on every index, a group's indexes in order on one thread, up to
/// `jobs` groups at once. Stops starting new work at the first error
/// and returns it; otherwise returns the results in index order.
pub fn run_parallel<R: Send>(
    groups: &[Vec<usize>],
    count: usize,
    jobs: usize,
    f: impl Fn(usize) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(groups.len()).max(1) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    for &i in group {
                        match f(i) {
                            Ok(r) => results.lock().expect("not poisoned")[i] = Some(r),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error.lock().expect("not poisoned").get_or_insert(e);
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("not poisoned") {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every index ran"))
        .collect())
}

/// Runs `f` on every index below `count`, up to `jobs` at once (see
/// [`run_parallel`]).
pub fn for_each_index<R: Send>(
    count: usize,
    jobs: usize,
    f: impl Fn(usize) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let each: Vec<Vec<usize>> = (0..count).map(|i| vec![i]).collect();
    run_parallel(&each, count, jobs, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_everything_in_order_and_bounds_the_threads() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = for_each_index(40, 3, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(i * 2)
        })
        .unwrap();
        assert_eq!(out, (0..40).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 2, "never ran in parallel");
    }

    #[test]
    fn the_first_error_stops_new_work() {
        let ran = AtomicUsize::new(0);
        let err = for_each_index(100, 2, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 5 {
                anyhow::bail!("item 5 failed");
            }
            // Work that takes time, as real items do: without it the other
            // thread can finish every item before the failure is seen.
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "item 5 failed");
        assert!(ran.load(Ordering::SeqCst) < 100);
    }
}
