//! Thread setup for the CPU kernels: one rayon pool that the main thread works in, and candle's
//! element-wise ops on the calling thread.
//!
//! By default a process here runs three kinds of threads for two cores: the main thread, which
//! blocks while rayon's workers (one per core) run a kernel, and candle's "barrier pool" worker
//! (candle-core 0.11, one per core but the caller), which element-wise ops of 64 Ki elements or
//! more use (the batch-norm fold of a 128 -> 128 3x3 kernel, optimizer updates, gradient sums) and
//! which spins for a while after each op, taking a core from the rayon workers. Hitomi's own kernels
//! (convolutions, batch norm, pooling) run on rayon, so the setup below leaves one thread per core:
//! the main thread is rayon's worker 0 and candle's element-wise ops run where they are called.
//! Measured with `hitomi bench` on a 2-core AMD EPYC host without AVX-512 (five alternating runs
//! without and with this setup, medians): batch-1 latency A 5.90 -> 4.01 ms, B 14.73 -> 10.40 ms;
//! batch-64 inference A 817 -> 894 img/s, B 152 -> 162; training A 231 -> 228, B 39.5 -> 42.2
//! (within the host's noise, which moved single runs by 20%). Setting only `CANDLE_NUM_THREADS=1`
//! gave latency A 5.52, B 11.86 ms.

/// Makes the calling thread worker 0 of rayon's global pool (the pool keeps `RAYON_NUM_THREADS`
/// threads in all, by default one per core) and sets `CANDLE_NUM_THREADS=1` unless the user set it.
/// Call first thing in `main`, before any thread exists; later calls, and a global pool built
/// before, leave things as they are.
pub fn join_pool_from_main() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Read by candle once, when its first large element-wise op builds the barrier pool; set
        // before any thread exists, so no other thread reads the environment meanwhile.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // An error means the global pool exists already (a second call): nothing to do.
    let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
}
