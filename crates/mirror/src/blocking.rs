//! The one way this crate runs blocking work: file I/O (reads, writes,
//! fsync, rename, remove, metadata, directory walks) and hashing files.
//!
//! Why one helper: the peer port and the mirror loop share tokio's async
//! threads with the web server, and an fsync on an SD card can stall for a
//! long time; a stalled async thread stalls every page. So anything that
//! touches the disk runs in a closure passed to [`blocking`], and the few
//! functions that do file I/O themselves say "Blocking" in their docs and are
//! only called inside such a closure (`local_packs`, `store_part`,
//! `hash_file`). SQL already runs off the async threads through
//! `Store::read` and `Store::write`. Steps that must happen in order
//! (write, fsync, rename, fsync the folder) go in one closure, so the order
//! stays visible in one place.

/// Runs `f` on tokio's blocking pool and returns its result.
///
/// The work starts when this is called, like `spawn_blocking` itself, not
/// when the future is first polled (as it would in an `async fn`): the
/// holder's upload writer must run while the request body is still
/// streaming into it, and the owner's pack reader runs detached, feeding a
/// request body. A panic in `f` comes back as an `io::Error`, converted
/// into the caller's error type like any other I/O failure.
pub(crate) fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> impl Future<Output = Result<T, E>>
where
    T: Send + 'static,
    E: From<std::io::Error> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    async move {
        task.await
            .map_err(|e| E::from(std::io::Error::other(e.to_string())))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_starts_before_the_future_is_polled() {
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = blocking(move || tx.send(7).map_err(std::io::Error::other));
        // Not polled yet, and still the closure runs.
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(10)), Ok(7));
        pending.await.unwrap();
    }

    #[tokio::test]
    async fn a_panic_is_an_io_error() {
        let r: std::io::Result<()> = blocking(|| panic!("boom")).await;
        assert!(r.is_err());
    }
}
