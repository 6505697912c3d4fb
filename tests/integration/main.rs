//! labelhost's one integration-test target: the real `labelhost` binary serving real
//! plugin bundles, driven over HTTP with reqwest.
//!
//! Build everything first (`scripts/test.sh` does): the binary, the first-party plugins,
//! the fixture plugins in `tests/fixtures/`.

// Shared helpers: paths, bundle packing, volumes, a running server. New helpers go here.
mod support;

// Several apps at once: `/info/`, infer, active learning across apps.
mod apps;
// Loading, hot swap under load, failed reloads, retiring.
mod lifecycle;
// MONAI Label's /datastore routes: images, labels, info, checksums, typed errors.
mod datastore;
// MONAI Label's own Python client against a running server.
mod clients;
// Studies folders shared with MONAI Label's own LocalDatastore, both ways.
mod interop;
// 3D Slicer's module, replayed call by call.
mod slicer;
// Active learning: claims, uncertainty strategies, scoring.
mod activelearning;
// Interactive segmentation: scribbles.
mod interactive;
// Click-guided segmentation (DeepEdit, DeepGrow) with a network labelhost trains.
mod clicks;
// Background jobs: scoring, batch inference, training records.
mod jobs;
// Brain extraction with the pretrained deepbet models on real volumes (Dice).
mod brain;
// The segmentation app's UNet by sliding-window inference.
mod segmentation;
// Training on the shared executor: from labels to a published, better model.
mod training;
// Plugin-api versions: the previous minor loads, another major is refused.
mod abi_versions;
// Panics and bad input: typed JSON errors, the server keeps serving.
mod failures;
// Time limits, cancelled work, sliding-window bounds.
mod limits;
// Tokens, JWTs and MONAI Label's roles on every route.
mod auth;
// Refused uploads and ids, private paths and log, CORS, the private runtime folder.
mod safety;
// The `cargo generate` app template.
mod template;
// `/metrics`: Prometheus text after real requests.
mod metrics;
// `labelhost infer` and `labelhost datastore`: the verbs that work without a server.
mod cli;
// The dashboard at /ui/ in headless Chromium.
mod dashboard;
// DICOM series read into volumes.
mod dicom;
// A real PACS (Orthanc, DICOMweb) and labelhost's DICOM tools against it.
mod pacs;
// A server over a PACS: the DICOMweb datastore.
mod dicomweb;
// Several hosts as one service over a real PostgreSQL: claims, labels, one training,
// published models.
mod cluster;
// The tests' own load balancer (round robin over hosts, skipping dead ones).
mod balancer;
// Three hosts behind it under 50 annotators, one killed and restarted.
mod cluster_load;
// The container recipe and Kubernetes manifests (host/deploy) checked.
mod deploy;
