//! What watch mode keeps per instance: the heap of the per-application index after N
//! applications arrived as `ADDED` events, and again after a million `MODIFIED` events moved
//! them around (it must not grow with events), plus the time to apply one event and to tally
//! the index (done once per debounced publication). BENCHMARKS.md's "Watch mode: the index".
//!
//!     cargo bench --bench index
//!
//! Heap bytes are counted by a global allocator that wraps the system one: exact, and
//! independent of the machine's load. Times are medians of 5 runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use argomap::argocd::stream::{AppIndex, apply_line};

/// Live heap bytes of the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, as the caller promised.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Destinations the fleet's applications spread over.
const CLUSTERS: usize = 500;
/// `MODIFIED` events applied after the `ADDED` burst.
const CHURN: usize = 1_000_000;

/// One event as the stream frames it, with the projection argomap asks for.
fn event(kind: &str, app: usize, cluster: usize) -> String {
    format!(
        r#"data: {{"result":{{"application":{{"metadata":{{"name":"app-{app:07}","namespace":"argocd"}},"spec":{{"destination":{{"namespace":"apps","server":"https://c{cluster:05}.k8s.example.com:6443"}}}}}},"type":"{kind}"}}}} "#
    )
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    println!(
        "| applications | index heap | per application | after {CHURN} MODIFIED | apply one event | tally |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for apps in [1_000, 10_000, 100_000] {
        let added: Vec<String> = (0..apps).map(|i| event("ADDED", i, i % CLUSTERS)).collect();
        let moved: Vec<String> =
            (0..CHURN).map(|i| event("MODIFIED", i % apps, (i * 7 + 3) % CLUSTERS)).collect();

        let before = LIVE.load(Ordering::Relaxed);
        let mut index = AppIndex::default();
        for line in &added {
            apply_line(&mut index, line).expect("an event");
        }
        let heap = LIVE.load(Ordering::Relaxed) - before;
        for line in &moved {
            apply_line(&mut index, line).expect("an event");
        }
        let churned = LIVE.load(Ordering::Relaxed) - before;
        assert_eq!(index.len(), apps);

        let apply: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                for line in &moved[..100_000] {
                    black_box(apply_line(&mut index, line).expect("an event"));
                }
                t.elapsed().as_secs_f64() / 100_000.0
            })
            .collect();
        let tally: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                black_box(index.tally());
                t.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "| {apps} | {:.2} MiB | {} B | {:.2} MiB | {:.2} µs | {:.2} ms |",
            heap as f64 / 1048576.0,
            heap / apps as isize,
            churned as f64 / 1048576.0,
            median(apply) * 1e6,
            median(tally) * 1e3,
        );
        drop(index);
    }
}
