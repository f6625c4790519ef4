//! A small fan-out for work that is independent per item (packs checked,
//! uploaded or downloaded) while the results must be written by one thread:
//! SQLite has one writer, and a transaction lives on the thread that opened
//! it. Scoped threads, so the work may borrow the repository.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `work` on `items` from `threads` threads and hands each result to
/// `done` on the calling thread, in the order they finish. The first error
/// (from `work` or `done`) stops new work and is returned once the work
/// under way has ended.
pub(crate) fn in_parallel<T: Send, R: Send, E: Send>(
    threads: usize,
    items: Vec<T>,
    work: impl Fn(T) -> Result<R, E> + Sync,
    mut done: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    let queue = std::sync::Mutex::new(items.into_iter());
    let failed = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut first_error = None;
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (tx, queue, failed, work) = (tx.clone(), &queue, &failed, &work);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        break;
                    };
                    let result = work(item);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if tx.send(result).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for result in rx {
            if let Err(e) = result.and_then(&mut done) {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    });
    first_error.map_or(Ok(()), Err)
}

/// Threads for CPU-bound checks: one per core, at most four (a Pi 4 has
/// four; more would only hold more packs in memory at once).
pub(crate) fn cpu_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}
