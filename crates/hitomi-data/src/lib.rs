//! hitomi-data: dataset formats (MNIST IDX, ImageFolder), augmentation, and the prefetching batch
//! loader. All randomness comes from `SeededRng::derive` streams keyed by (seed, epoch, sample), so
//! batches never depend on thread scheduling or on where a run resumed.

pub mod augment;
pub mod batch;
pub mod canvas;
pub mod classification;
pub mod data_yaml;
pub mod detection;
pub mod distort;
pub mod exemplars;
pub mod gaussian;
pub mod idx;
pub mod image_folder;
pub mod index_mask;
pub mod loader;
pub mod mnist;
pub mod mvtec;
pub mod normalize;
pub mod patches;
pub mod pixels;
pub mod planar;
pub mod segmentation;
pub mod split_checks;
pub mod textures;

pub use augment::{augment, AugmentConfig};
pub use batch::classification_batch;
pub use classification::{ClassificationData, OpenOptions, Source};
pub use idx::{read_idx_images, read_idx_labels, IdxImages};
pub use loader::{BatchIter, Loader, MakeBatch};
pub use normalize::Normalize;
pub use planar::Planar;
pub use segmentation::SegmentationData;
