//! `threads::join_pool_from_main` in a process of its own (the global pool is built once).

#[test]
fn calling_thread_becomes_worker_zero_and_candle_runs_inline() {
    std::env::remove_var("CANDLE_NUM_THREADS");
    assert_eq!(rayon::current_thread_index(), None);
    hitomi_core::threads::join_pool_from_main();
    assert_eq!(rayon::current_thread_index(), Some(0));
    assert_eq!(std::env::var("CANDLE_NUM_THREADS").as_deref(), Ok("1"));
    // Work still spreads over the pool and comes back, and candle's element-wise ops (above their
    // 64 Ki-element threshold for the barrier pool) still compute.
    use rayon::iter::{IntoParallelIterator, ParallelIterator};
    assert_eq!((0..100_000u64).into_par_iter().sum::<u64>(), 4_999_950_000);
    let xs = candle_core::Tensor::ones(1 << 17, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let total = (&xs + &xs).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(total, 2.0 * (1 << 17) as f32);
    // A second call changes nothing, and a user's own setting of the variable is kept.
    std::env::set_var("CANDLE_NUM_THREADS", "3");
    hitomi_core::threads::join_pool_from_main();
    assert_eq!(rayon::current_thread_index(), Some(0));
    assert_eq!(std::env::var("CANDLE_NUM_THREADS").as_deref(), Ok("3"));
}
