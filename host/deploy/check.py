"""What host/deploy/kubernetes promises, checked on its rendered manifests (scripts/deploy.sh).

usage: python3 host/deploy/check.py RENDERED.yaml
Exits 1 naming the first promise a manifest breaks.
"""
import sys

import yaml


def fail(why):
    print(f"deploy check: {why}", file=sys.stderr)
    sys.exit(1)


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    hosts = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "labelhost"]
    if not hosts:
        fail("no Deployment named labelhost")
    spec = hosts[0]["spec"]
    if spec.get("replicas", 1) < 2:
        fail("the labelhost Deployment runs fewer than 2 replicas")
    if spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable") != 1:
        fail("a rolling update may take down more than one host at a time")
    pod = spec["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "labelhost")
    for probe in ("readinessProbe", "livenessProbe"):
        path = container.get(probe, {}).get("httpGet", {}).get("path")
        if path != "/health":
            fail(f"{probe} is not an HTTP GET of /health (it is {path!r})")
    resources = container.get("resources", {})
    if "nvidia.com/gpu" not in resources.get("limits", {}):
        fail("the labelhost container asks for no GPU (limits nvidia.com/gpu)")
    env = {e["name"]: e for e in container.get("env", [])}
    cluster = env.get("LABELHOST_CLUSTER", {}).get("valueFrom", {}).get("secretKeyRef")
    if not cluster:
        fail("LABELHOST_CLUSTER does not come from a Secret")
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    if cluster["name"] not in secrets:
        fail(f"the Secret {cluster['name']!r} of LABELHOST_CLUSTER is not in the manifests")
    if env.get("LABELHOST_HOST_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        fail("LABELHOST_HOST_NAME is not the pod's name")
    runtime = env.get("LABELHOST_RUNTIME_DIR", {}).get("value", "")
    mounts = [m["mountPath"].rstrip("/") for m in container.get("volumeMounts", [])]
    if runtime.rstrip("/") in mounts:
        fail("LABELHOST_RUNTIME_DIR is a volume's root, which the server refuses (not private)")
    if not any(s["metadata"]["name"] == "labelhost" for s in by_kind.get("Service", [])):
        fail("no Service named labelhost in front of the hosts")
    if not by_kind.get("StatefulSet"):
        fail("no PostgreSQL StatefulSet for the cluster store")
    claims = {c["metadata"]["name"]: c for c in by_kind.get("PersistentVolumeClaim", [])}
    for volume in pod.get("volumes", []):
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and "ReadWriteMany" not in claims.get(claim, {}).get("spec", {}).get("accessModes", []):
            fail(f"the hosts share the volume {claim!r}, which is not ReadWriteMany")
    print(f"deploy check: {len(docs)} manifests keep their promises "
          f"({spec['replicas']} hosts, /health probes, a GPU each, the cluster store from a Secret)")


if __name__ == "__main__":
    main(sys.argv[1])
