//! How the fused kernels use several threads: on candle's own CPU worker
//! pool, the one its element-wise ops run on (`candle_core::utils::
//! barrier_pool`: the calling thread plus `get_num_threads() − 1` workers).
//!
//! Not rayon's global pool, which is what `par_iter` and the `gemm` crate's
//! `Parallelism::Rayon` use: candle's pool workers spin for a while after
//! each element-wise op before parking, and rayon's workers spin after each
//! task, so a training step that used both kept four threads busy on two
//! cores (the caller, waiting on rayon; two rayon workers; a candle worker)
//! and every product ran beside a spinning thread. On one pool the threads
//! are exactly `get_num_threads()`, and with one thread every task runs
//! inline on the caller. Measured on the tiny model's pre-training step
//! (2 cores, `cargo bench --bench lm_speed`): the README's "Training speed"
//! section has the figures.

use candle_core::utils::barrier_pool;
use std::sync::Mutex;

/// The threads a parallel call runs on: the caller and candle's workers.
pub(super) fn available() -> usize {
    barrier_pool().n_workers() + 1
}

/// `f` applied to every item on candle's CPU threads; the results in the
/// items' order, so whatever is summed from them afterwards adds in the same
/// order for any thread count.
///
/// Items are handed out a few at a time from a shared cursor, so a thread
/// that finishes early takes over work from a slow one.
pub(super) fn map<I: Send, R: Send>(
    items: impl IntoIterator<Item = I>,
    f: impl Fn(I) -> R + Sync,
) -> Vec<R> {
    if available() == 1 {
        return items.into_iter().map(f).collect();
    }
    let tasks: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let results: Vec<Mutex<Option<R>>> = tasks.iter().map(|_| Mutex::new(None)).collect();
    barrier_pool().execute_chunked(tasks.len(), |range| {
        for i in range {
            // Each index is handed out once, so both locks are uncontended.
            if let Some(item) = lock(&tasks[i]).take() {
                *lock(&results[i]) = Some(f(item));
            }
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("candle's pool runs every index it is given")
        })
        .collect()
}

/// `f` run on every item on candle's CPU threads.
pub(super) fn for_each<I: Send>(items: impl IntoIterator<Item = I>, f: impl Fn(I) + Sync) {
    map(items, f);
}

/// A lock that a panic elsewhere does not poison for good: the pool passes
/// the panic on to the caller, which is what reports it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item runs once and results keep the items' order.
    #[test]
    fn map_keeps_order_and_runs_every_item_once() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = map(0..1000usize, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            i * i
        });
        assert_eq!(calls.into_inner(), 1000);
        assert_eq!(out, (0..1000usize).map(|i| i * i).collect::<Vec<_>>());
        assert!(map(std::iter::empty::<usize>(), |i| i).is_empty());
    }

    /// Items may be mutable borrows of disjoint pieces of one buffer.
    #[test]
    fn for_each_writes_disjoint_chunks() {
        let mut buf = vec![0u32; 1003];
        for_each(buf.chunks_mut(10).enumerate(), |(c, chunk)| {
            for (j, x) in chunk.iter_mut().enumerate() {
                *x = (c * 10 + j) as u32;
            }
        });
        assert!(buf.iter().enumerate().all(|(i, &x)| x == i as u32));
    }
}
