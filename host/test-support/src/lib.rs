//! labelhost-test-support: a plugin's own tests run its tasks in process against a real
//! host (the LibTorch executor, a datastore in a temporary folder), without a server.
//!
//! The app is built through the same ABI adapter a loaded plugin exports, and every task is
//! called with the request the server would send, so what passes here behaves the same when
//! the bundle is loaded with `POST /apps`.
//!
//! ```no_run
//! use labelhost_test_support::{json, TestHost};
//! # struct MyApp;
//! # impl labelhost_plugin_api::sdk::App for MyApp {
//! #     const NAME: &'static str = "my-app";
//! #     fn new(_: &labelhost_plugin_api::sdk::Host) -> labelhost_plugin_api::sdk::Result<Self> { Ok(MyApp) }
//! #     fn tasks(&self) -> labelhost_plugin_api::sdk::Tasks { Default::default() }
//! # }
//! let host = TestHost::new()?;
//! host.add_volume("ball", [16, 16, 16], |x, y, z| if x + y + z > 20 { 100.0 } else { 0.0 })?;
//! let app = host.app::<MyApp>()?;
//! let out = app.infer("my_app_threshold", "ball", json!({}))?;
//! let label = labelhost_test_support::read_volume(out.label.as_deref().expect("a label"))?;
//! assert!(label.iter().any(|&v| v > 0.0));
//! # Ok::<(), labelhost_test_support::Error>(())
//! ```

mod volumes;

pub use labelhost::{local::Inferred, Error, Result};
pub use labelhost_plugin_api::abi::TaskKind;
pub use serde_json::{json, Value};
pub use volumes::{read_volume, write_label, write_volume};

use labelhost::{datastore::LocalDatastore, local::LocalApp, services::Shared};
use labelhost_plugin_api::sdk::{self, AppAdapter};
use serde_json::Map;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// A host for tests: a studies folder in a temporary folder, a fresh executor (CUDA device
/// 0 when present, else the CPU) and `--conf` settings. Everything is removed on drop.
pub struct TestHost {
    // Dropped before the folder it lives in.
    shared: Shared,
    dir: tempfile::TempDir,
}

impl TestHost {
    /// An empty datastore, no settings.
    pub fn new() -> Result<Self> {
        TestHost::with_conf(&[])
    }

    /// An empty datastore and `--conf KEY=VALUE` settings (what `Host::conf` answers).
    pub fn with_conf(conf: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(io)?;
        let studies = dir.path().join("studies");
        std::fs::create_dir_all(&studies).map_err(io)?;
        let conf: BTreeMap<_, _> = conf
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let shared = labelhost::local::shared(&studies, conf)?;
        Ok(TestHost { shared, dir })
    }

    /// The studies folder.
    pub fn studies(&self) -> &Path {
        self.shared.datastore.root()
    }

    /// The datastore (to check what a task saved, or to arrange images and labels).
    pub fn datastore(&self) -> &LocalDatastore {
        &self.shared.datastore
    }

    /// A scratch folder for the test's own files (inside the host's temporary folder).
    pub fn scratch(&self) -> Result<PathBuf> {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).map_err(io)?;
        Ok(p)
    }

    /// Adds an image file to the datastore as `id` (checked as an upload is).
    pub fn add_image(&self, id: &str, file: &Path) -> Result<String> {
        Ok(self.shared.datastore.add_image(id, file, Map::new())?)
    }

    /// Adds a float volume of `shape` voxels (1 mm, identity affine) with `voxel(x, y, z)`
    /// as image `id`.
    pub fn add_volume(
        &self,
        id: &str,
        shape: [usize; 3],
        voxel: impl Fn(usize, usize, usize) -> f32,
    ) -> Result<String> {
        let path = self.scratch()?.join(format!("{id}.nii.gz"));
        write_volume(&path, shape, voxel)?;
        self.add_image(id, &path)
    }

    /// Saves `label(x, y, z)` on image `image`'s grid as its label of `tag` (`final` is
    /// what counts as labelled).
    pub fn save_label(
        &self,
        image: &str,
        tag: &str,
        label: impl Fn(usize, usize, usize) -> u8,
    ) -> Result<String> {
        let src = self.shared.datastore.get_image_uri(image)?;
        let path = self.scratch()?.join(format!("{image}-{tag}.nii.gz"));
        write_label(&src, &path, label)?;
        Ok(self
            .shared
            .datastore
            .save_label(image, &path, tag, Map::new())?)
    }

    /// The SDK's `Host` as an app named `app` gets it (assets from `bundle_dir`), for
    /// testing code that takes a `&Host` (a pipeline step, a helper) without an app.
    pub fn plugin_host(&self, app: &str, bundle_dir: &Path) -> Result<sdk::Host> {
        let work = self.dir.path().join("work").join(app);
        std::fs::create_dir_all(&work).map_err(io)?;
        let ctx = labelhost::services::HostContext::new(
            app,
            self.shared.clone(),
            bundle_dir.to_path_buf(),
            work,
        );
        Ok(sdk::Host::from_abi(ctx.into_abi()))
    }

    /// Builds app `A` with its assets from the crate under test (`CARGO_MANIFEST_DIR`, which
    /// cargo sets for tests): `assets/x` there is `host.asset("assets/x")`.
    pub fn app<A: sdk::App>(&self) -> Result<TestApp<'_>> {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::BadRequest("CARGO_MANIFEST_DIR is not set; use app_in(bundle_dir)".into())
            })?;
        self.app_in::<A>(&dir)
    }

    /// Builds app `A` with its assets from `bundle_dir`.
    pub fn app_in<A: sdk::App>(&self, bundle_dir: &Path) -> Result<TestApp<'_>> {
        let work = self.dir.path().join("work").join(A::NAME);
        let local = LocalApp::construct(
            A::NAME,
            &self.shared,
            bundle_dir,
            &work,
            AppAdapter::<A>::construct,
        )?;
        Ok(TestApp { host: self, local })
    }
}

/// An app built in process; its tasks are called as the server calls them.
pub struct TestApp<'h> {
    host: &'h TestHost,
    local: LocalApp,
}

impl TestApp<'_> {
    /// The names of the app's tasks of one kind (`TaskKind::INFER`...).
    pub fn tasks(&self, kind: TaskKind) -> Vec<String> {
        self.local.task_names(kind)
    }

    /// Runs infer task `task` on datastore image `image` with MONAI Label params (a JSON
    /// object). The result file, if any, is in the app's work folder.
    pub fn infer(&self, task: &str, image: &str, params: Value) -> Result<Inferred> {
        let path = self.host.shared.datastore.get_image_uri(image)?;
        self.infer_file(task, &path, params)
    }

    /// Runs infer task `task` on an image file.
    pub fn infer_file(&self, task: &str, image: &Path, params: Value) -> Result<Inferred> {
        self.local.infer(task, image, object(params)?)
    }

    /// Runs train task `trainer` to the end; answers its train stats.
    pub fn train(&self, trainer: &str, request: Value) -> Result<Value> {
        self.local.train(trainer, object(request)?)
    }

    /// Asks strategy `strategy` for the next image: `{"id": ...}`, or `{}` when none is left.
    pub fn next_sample(&self, strategy: &str, request: Value) -> Result<Value> {
        self.local.next_sample(strategy, object(request)?)
    }

    /// Runs scoring method `method`; answers its JSON.
    pub fn scoring(&self, method: &str, request: Value) -> Result<Value> {
        self.local.scoring(method, object(request)?)
    }

    /// Tells the app a label was saved, as the server does after `PUT /datastore/label`.
    pub fn on_save_label(&self, image: &str, label: &str) -> Result<Value> {
        self.local.on_save_label(image, label)
    }
}

fn object(v: Value) -> Result<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(Error::BadRequest(format!(
            "a request is a JSON object, not {other}"
        ))),
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Internal(format!("test host folder: {e}"))
}
