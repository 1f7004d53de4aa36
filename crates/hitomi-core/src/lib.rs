//! hitomi-core: what every crate shares: seeded randomness, the parameter store, checkpoint I/O,
//! image decoding with limits, and golden-value helpers for tests.

pub mod alloc;
pub mod boxes;
pub mod checkpoint;
pub mod image_io;
pub mod params;
pub mod rng;
pub mod testing;

pub use params::{Init, ParamKind, ParamPath, ParamStore};
pub use rng::SeededRng;
