//! hitomi-core: what every crate shares: seeded randomness, the parameter store, checkpoint I/O,
//! image decoding with limits, golden-value helpers for tests, and allocator and thread setup.

pub mod alloc;
pub mod boxes;
pub mod checkpoint;
pub mod image_io;
pub mod params;
pub mod rng;
pub mod testing;
pub mod threads;

pub use params::{Init, ParamKind, ParamPath, ParamStore};
pub use rng::SeededRng;
