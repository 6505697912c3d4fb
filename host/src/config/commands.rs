//! The flags of the verbs other than `serve`: `apps` (a running server's apps), `token`,
//! `pack`, `infer` and `datastore` (work without a server).

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `labelhost apps` flags.
#[derive(Debug, Args)]
pub struct AppsArgs {
    /// The server's URL.
    #[arg(
        long,
        env = "LABELHOST_SERVER",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server: String,
    /// A bearer token (an API token or a JWT) for a server with auth on.
    #[arg(long, env = "LABELHOST_TOKEN")]
    pub token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: AppsAction,
}

/// `labelhost apps` actions.
#[derive(Debug, Subcommand)]
pub enum AppsAction {
    /// The loaded apps: name, version, generation, plugin-api and tasks.
    List,
    /// Load a bundle from the server's plugins folder.
    Load {
        /// The bundle's folder name.
        bundle: String,
    },
    /// Hot-swap an app to the bundle now in its folder (in-flight requests finish on the
    /// old generation).
    Reload {
        /// The app.
        name: String,
    },
    /// Retire an app: stop routing to it, wait for its requests, drop it.
    Retire {
        /// The app.
        name: String,
    },
    /// Hot-swap an app on several hosts one at a time (a rolled update behind a load
    /// balancer: each host's in-flight requests finish on the old generation while the
    /// others serve); stops at the first host that fails or loads another version.
    Roll {
        /// The app.
        name: String,
        /// The hosts' URLs, in the order to swap them (comma-separated or repeated).
        #[arg(long = "hosts", value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// The version every host must load (the bundle in each host's plugins folder);
        /// a host that loads another stops the roll.
        #[arg(long)]
        expect_version: Option<String>,
    },
}

/// `labelhost token` flags.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Who the token is for.
    #[arg(long)]
    pub username: String,
    /// A role it carries: user, annotator, reviewer or admin (repeatable).
    #[arg(long = "role", required = true)]
    pub roles: Vec<String>,
}

/// `labelhost pack` flags.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The plugin library (`.so`).
    #[arg(long)]
    pub library: PathBuf,
    /// An asset to include, `SOURCE[=PATH_IN_BUNDLE]` (repeatable).
    #[arg(long = "asset")]
    pub assets: Vec<String>,
    /// The bundle folder to write (with --archive: the folder name, `.tar.gz` is added).
    #[arg(long)]
    pub out: PathBuf,
    /// Write the bundle as one `.tar.gz` file instead of a folder.
    #[arg(long)]
    pub archive: bool,
}

/// `labelhost infer` flags.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// The infer task to run (as `POST /infer/{model}` names it).
    #[arg(long)]
    pub model: String,
    /// The image file (NIfTI or NRRD).
    pub image: PathBuf,
    /// Where to write the label (default: `<image name>_<model><ext>` in the current folder).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Folder of app bundles.
    #[arg(long, env = "LABELHOST_PLUGINS")]
    pub plugins: PathBuf,
    /// A studies folder the task may read (default: an empty one, removed at exit).
    #[arg(long)]
    pub studies: Option<PathBuf>,
    /// App configuration, KEY=VALUE (repeatable; the variable takes a comma-separated list).
    #[arg(long = "conf", env = "LABELHOST_CONF", value_delimiter = ',')]
    pub conf: Vec<String>,
    /// A request parameter, KEY=VALUE; VALUE is JSON where it reads as JSON, else text
    /// (repeatable).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// The executor device to run on (`cpu`, `cuda:0`; default: CUDA device 0 when present).
    #[arg(long)]
    pub device: Option<String>,
}

/// `labelhost datastore` flags.
#[derive(Debug, Args)]
pub struct DatastoreArgs {
    /// Studies folder (the datastore).
    #[arg(long, env = "LABELHOST_STUDIES")]
    pub studies: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: DatastoreAction,
}

/// `labelhost datastore` actions.
#[derive(Debug, Subcommand)]
pub enum DatastoreAction {
    /// Images, how many are labelled (`final`), labels per tag.
    Stats {
        /// Print MONAI Label's datastore status JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Copy image files in, checked as uploads are, with labels named as the images.
    Import {
        /// Image files, or folders whose image files (`.nii`, `.nii.gz`, `.nrrd`...) go in;
        /// a folder's DICOM files go in as one NIfTI image per series (id: the
        /// SeriesInstanceUID), and so does each series a DICOMweb server's QIDO-RS finds
        /// (`http://pacs:8042/dicom-web`).
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// A QIDO-RS filter for DICOMweb sources, KEY=VALUE (`Modality=MR`; repeatable).
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// HTTP basic credentials for DICOMweb sources, USER:PASSWORD.
        #[arg(long, env = "LABELHOST_DICOMWEB_CREDENTIALS")]
        dicomweb_credentials: Option<String>,
        /// A folder of labels named as their images (`<id>.nii.gz`), saved with `--tag`.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// The tag the imported labels get.
        #[arg(long, default_value = "final")]
        tag: String,
        /// Replace images already in the datastore (default: keep them).
        #[arg(long)]
        replace: bool,
    },
    /// Copy images and their labels of one tag out as a Decathlon-style dataset folder
    /// (`imagesTr`, `labelsTr`, `imagesTs`, `dataset.json`).
    Export {
        /// A new or empty folder.
        #[arg(long)]
        out: PathBuf,
        /// The labels to export.
        #[arg(long, default_value = "final")]
        tag: String,
        /// Leave out images with no label of that tag.
        #[arg(long)]
        labelled_only: bool,
    },
}

/// `labelhost dicom` flags.
#[derive(Debug, Args)]
pub struct DicomArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DicomAction,
}

/// `labelhost dicom` actions.
#[derive(Debug, Subcommand)]
pub enum DicomAction {
    /// A folder's DICOM series (one) as a NIfTI volume, `[column, row, slice]` with its
    /// RAS affine.
    ToNifti {
        /// The series' folder.
        series: PathBuf,
        /// The NIfTI file to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// A NIfTI or NRRD volume as a DICOM MR series (one instance per slice along its third
    /// axis, geometry from its affine, fresh UIDs), for a PACS.
    FromNifti {
        /// The volume.
        volume: PathBuf,
        /// The folder to write the instances into.
        #[arg(short, long)]
        out: PathBuf,
        /// `PatientID`.
        #[arg(long, default_value = "anonymous")]
        patient_id: String,
        /// `SeriesDescription`.
        #[arg(long, default_value = "labelhost")]
        description: String,
    },
    /// A label volume on a series' grid (what `to-nifti` makes of it) as a binary DICOM
    /// Segmentation referencing the series.
    Seg {
        /// The series' folder.
        #[arg(long)]
        series: PathBuf,
        /// The label (NIfTI) on the series' grid.
        label: PathBuf,
        /// A segment, NAME=VALUE (repeatable; default: one per value, named by it).
        #[arg(long = "segment")]
        segments: Vec<String>,
        /// The algorithm that made it (the segments are AUTOMATIC); without it, MANUAL.
        #[arg(long)]
        algorithm: Option<String>,
        /// The SEG file to write.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Also store it on this DICOMweb server (STOW-RS).
        #[arg(long)]
        stow: Option<String>,
    },
    /// A DICOM SEG of a series read back as a label volume (each segment's voxels get its
    /// SegmentNumber).
    ReadSeg {
        /// The series' folder.
        #[arg(long)]
        series: PathBuf,
        /// The SEG file.
        seg: PathBuf,
        /// The NIfTI file to write.
        #[arg(short, long)]
        out: PathBuf,
    },
}
