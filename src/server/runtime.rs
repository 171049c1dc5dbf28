//! Which thread serves: tokio's work-stealing runtime (one pool of workers, a
//! connection's tasks may move between them), or one current-thread runtime per core,
//! each accepting on its own `SO_REUSEPORT` listener (`SERVER_RUNTIME=per-core`).
//! Per-core state (the upstream connection pools) is indexed by the serving thread.

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The number of per-thread slots: one per core, and slot 0 for every other thread.
pub fn slots() -> usize {
    static SLOTS: OnceLock<usize> = OnceLock::new();
    *SLOTS.get_or_init(|| cores() + 1)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// This thread's slot: its core's (1..=cores) on a per-core worker, else 0.
pub fn slot() -> usize {
    WORKER.with(Cell::get)
}

/// Marks the calling thread as the worker of core `index` (0-based).
pub fn enter_worker(index: usize) {
    WORKER.with(|worker| worker.set(index + 1));
}
