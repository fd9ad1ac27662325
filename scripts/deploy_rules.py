"""Herald's deploy rules, checked on one rendered variant (a multi-document YAML file).

Every Herald Deployment (label app.kubernetes.io/part-of=herald) must run `herald serve
<its name>`, have native gRPC startup, readiness and liveness probes on its container port,
the restricted security context, requests and limits, and a writable /var/lib/herald and
/tmp. Prints one line per broken rule and exits 1 if any.
"""

import sys

import yaml

PORTS = {"ingest": 50051, "segmentation": 50052, "trigger": 50053, "delivery": 50054, "analytics": 50055}


def check(doc):
    name = doc["metadata"]["name"]
    pod = doc["spec"]["template"]["spec"]
    if pod.get("automountServiceAccountToken") is not False:
        yield f"{name}: service account token is automounted"
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield f"{name}: pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault"
    (c,) = pod["containers"]
    if c.get("args") != ["serve", name]:
        yield f"{name}: args {c.get('args')} != ['serve', '{name}']"
    port = PORTS.get(name)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if c.get(probe, {}).get("grpc", {}).get("port") != port:
            yield f"{name}: {probe} is not a native gRPC probe on port {port}"
    sc = c.get("securityContext", {})
    if not (sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        yield f"{name}: container securityContext is not restricted"
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(kind, {})):
            yield f"{name}: missing cpu/memory {kind}"
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    for path in ("/var/lib/herald", "/tmp", "/etc/herald"):
        if path not in mounts:
            yield f"{name}: nothing mounted at {path}"
    env = {e["name"] for e in c.get("env", [])}
    for var in ("HERALD_LISTEN_ADDR", "HERALD_DATABASE_URL", "HERALD_CONFIG", "HERALD_DATA_DIR", "HERALD_INSTANCE_ID"):
        if var not in env:
            yield f"{name}: env {var} missing"


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"
                   and d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "herald"]
    problems = [p for d in deployments for p in check(d)]
    names = sorted(d["metadata"]["name"] for d in deployments)
    if names != sorted(PORTS):
        problems.append(f"expected Deployments {sorted(PORTS)}, found {names}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
