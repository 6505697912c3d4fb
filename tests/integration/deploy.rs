//! The deployment description (host/deploy): the Kubernetes manifests validate against
//! Kubernetes' schemas and keep their promises (scripts/deploy.sh check), and a copy that
//! breaks one — a single replica, a probe off /health, the runtime folder on a volume's
//! world-writable root, a field Kubernetes does not know — is refused with the reason.

use crate::support::repo_root;
use std::process::Command;

/// `scripts/deploy.sh check [dir]`: success and what it printed.
fn check(dir: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new(repo_root().join("scripts/deploy.sh"));
    cmd.arg("check");
    if let Some(dir) = dir {
        cmd.arg(dir);
    }
    let out = cmd.output().expect("scripts/deploy.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A copy of the manifests with `from` replaced by `to` in `file`.
fn broken(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo_root().join("host/deploy/kubernetes");
    for entry in std::fs::read_dir(&src).expect("manifests") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("read");
        if path.file_name().is_some_and(|n| n == file) {
            assert!(text.contains(from), "{file} has no {from:?}");
            text = text.replacen(from, to, 1);
        }
        std::fs::write(dir.path().join(path.file_name().expect("name")), text).expect("write");
    }
    dir
}

#[test]
fn the_kubernetes_manifests_validate_and_keep_their_promises() {
    let (ok, text) = check(None);
    assert!(ok, "{text}");
    assert!(text.contains("keep their promises (3 hosts"), "{text}");

    let one = broken("labelhost.yaml", "replicas: 3", "replicas: 1");
    let (ok, text) = check(Some(one.path()));
    assert!(!ok && text.contains("fewer than 2 replicas"), "{text}");

    let probe = broken("labelhost.yaml", "path: /health", "path: /");
    let (ok, text) = check(Some(probe.path()));
    assert!(!ok && text.contains("readinessProbe"), "{text}");

    let runtime = broken(
        "labelhost.yaml",
        "value: /var/lib/labelhost/scratch/runtime",
        "value: /var/lib/labelhost/scratch",
    );
    let (ok, text) = check(Some(runtime.path()));
    assert!(!ok && text.contains("not private"), "{text}");

    let unknown = broken(
        "labelhost.yaml",
        "terminationGracePeriodSeconds",
        "terminationGraceSeconds",
    );
    let (ok, text) = check(Some(unknown.path()));
    assert!(!ok && text.contains("terminationGraceSeconds"), "{text}");
}
