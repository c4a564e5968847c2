//! The memory allocator of every program built from this crate: jemalloc,
//! made to give freed memory back to the system.
//!
//! A chat server's memory comes in storms (a join storm, a netsplit
//! healing, a busy minute: every member owed a backlog for a moment) and
//! goes again. glibc's malloc keeps what was freed in the middle of its
//! heaps, so the process stays at its storm's size for good. jemalloc here
//! purges pages unused for a quarter of a second from a background
//! thread, keeps one arena, and has no per-thread caches: those hold
//! megabytes of freed blocks for each worker thread until it allocates
//! again, and the server's hot paths allocate per batch, not per line, so
//! they bought no measurable speed. `cargo bench --bench memory` measures
//! the memory, `docs/performance.md` has the figures.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it starts (`malloc_conf`, with the
/// crate's `_rjem_` prefix): unused pages purged from a background thread
/// after 250 ms, one arena, no thread caches.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static malloc_conf: &[u8; 82] =
    b"background_thread:true,narenas:1,tcache:false,dirty_decay_ms:250,muzzy_decay_ms:0\0";
