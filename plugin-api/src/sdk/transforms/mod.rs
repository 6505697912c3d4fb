//! CPU transforms for plugins, with MONAI's names and semantics (feature `nifti`). The
//! heavy, per-voxel arithmetic ones run on the host executor through `Executor::op`
//! (`interpolate` is MONAI's Resize, `scale_intensity_range`, `normalize_intensity`,
//! `crop` is SpatialCrop, `threshold`/`argmax` are AsDiscrete...); these are the ones
//! that walk the volume's structure.

mod components;
pub mod graphcut;
mod guidance;
mod orientation;
mod scribbles;

pub use components::{
    bounding_box, fill_holes, keep_largest_and_seeded, keep_largest_connected_component,
};
pub use guidance::{click_in, distance_inside, guidance_map};
pub use orientation::{Orientation, Stored};
pub use scribbles::{histogram_graph_cut, ScribbleOptions};
