"""Kubernetes and Argo Workflows: what the spec's `compute.kubernetes` turns into, offline.

No cluster here, so the tests check what would be sent to one: the WorkflowTemplate
that `argo-workflows create --only-json` renders for specs/gke.yaml (its code package
goes to a real fake-gcs-server), every pod in it validated against the Kubernetes 1.30
API schema, the code package's contents, the image's pins, and the RBAC manifests.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT, flow_env, run_flow, small_spec, write_spec
from emulator import Emulator
from kubernetes.utils import parse_quantity
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from shardfit import spec as spec_mod
from shardfit.kube import SHIPPED_PACKAGES, kubernetes_kwargs, package_files

K8S_VERSION = "1.30"  # GKE's oldest supported minor at the time of writing
GKE_SPEC = ROOT / "specs" / "gke.yaml"
DEPLOY = ROOT / "deploy"
BUCKET = "shardfit-mf"
# What deploy/README.md tells a launcher to export before `argo-workflows create`.
RUNBOOK_ENV = {
    "METAFLOW_DATASTORE_SYSROOT_GS": f"gs://{BUCKET}/metaflow",
    "METAFLOW_KUBERNETES_NAMESPACE": "ml",
    "METAFLOW_KUBERNETES_SERVICE_ACCOUNT": "shardfit",
    "METAFLOW_KUBERNETES_CONTAINER_IMAGE": "ghcr.io/acme/shardfit:0.1",
}
STEPS = ("start", "partition", "train", "join", "end")
# Argo template fields that are not part of the pod they become.
ARGO_ONLY = {"name", "inputs", "outputs", "failFast", "retryStrategy", "metadata", "container",
             "podSpecPatch", "timeout", "memoize", "synchronization"}
# Template fields Argo copies onto the pod spec.
POD_FIELDS = {"serviceAccountName", "nodeSelector", "tolerations", "volumes", "activeDeadlineSeconds",
              "affinity", "securityContext", "priorityClassName", "schedulerName", "hostAliases",
              "automountServiceAccountToken"}


def _hermetic_env(**extra: str) -> dict[str, str]:
    """flow_env without the developer's own Metaflow/Kubernetes settings leaking in."""
    env = {k: v for k, v in flow_env().items()
           if not k.startswith(("METAFLOW_KUBERNETES_", "METAFLOW_ARGO_", "METAFLOW_DATASTORE_SYSROOT_GS"))
           and k not in ("METAFLOW_DEFAULT_DATASTORE", "METAFLOW_DEFAULT_METADATA")}
    env["METAFLOW_HOME"] = _EMPTY_HOME  # no ~/.metaflowconfig either
    env.update(extra)
    return env


_EMPTY_HOME = tempfile.mkdtemp(prefix="shardfit-mf-home-")


@pytest.fixture(scope="module")
def gcs() -> dict[str, str]:
    """A fake-gcs-server with the datastore bucket; its env (ADC file included) for flows."""
    emulator = Emulator().start()
    try:
        emulator.create_bucket(BUCKET)
        yield emulator.env()
    finally:
        emulator.stop()


def _argo_env(gcs: dict[str, str], **extra: str) -> dict[str, str]:
    return _hermetic_env(**{**gcs, **RUNBOOK_ENV, **extra})


def render_argo(env: dict[str, str], *args: str, spec: Path = GKE_SPEC) -> subprocess.CompletedProcess:
    """The runbook's deploy command, printing the WorkflowTemplate instead of applying it."""
    return run_flow(["--datastore=gs", *args, "argo-workflows", "create", "--only-json",
                     "--spec", str(spec)], env=env, timeout=180)


def _json(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


@pytest.fixture(scope="module")
def workflow_template(gcs) -> dict:
    proc = render_argo(_argo_env(gcs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _json(proc.stdout)


@pytest.fixture(scope="module")
def gke() -> dict:
    return spec_mod.load(GKE_SPEC)


def _strip_nulls(value: Any) -> Any:
    """Drop nulls, as the API server's decoding does: the kubernetes client emits every field."""
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def pod_templates(wt: dict) -> dict[str, dict]:
    return {t["name"]: t for t in wt["spec"]["templates"] if "container" in t or "script" in t}


def as_pod(wt: dict, template: dict) -> dict:
    """The v1 Pod Argo creates for a container template (main container + pod-level fields)."""
    t = _strip_nulls(template)
    unknown = set(t) - ARGO_ONLY - POD_FIELDS
    assert not unknown, f"template {t['name']}: fields this test does not map onto a Pod: {unknown}"
    pod_meta = _strip_nulls(wt["spec"].get("podMetadata") or {})
    meta = t.get("metadata", {})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": t["name"],
            "namespace": wt["metadata"]["namespace"],
            "labels": {**pod_meta.get("labels", {}), **meta.get("labels", {})},
            "annotations": {k: str(v) for k, v in
                            {**pod_meta.get("annotations", {}), **meta.get("annotations", {})}.items()},
        },
        "spec": {"restartPolicy": "Never", "containers": [t["container"]]},
    }
    for key in POD_FIELDS & set(t):
        pod["spec"][key] = t[key]
    if "podSpecPatch" in t:
        pod["spec"].update(json.loads(t["podSpecPatch"]))
    return pod


def expected_resources(res: dict) -> dict[str, str]:
    """How Metaflow writes the spec's cpu / memory MB / disk MB; absent keys keep @kubernetes defaults."""
    from metaflow.plugins.kubernetes.kubernetes_decorator import KubernetesDecorator

    defaults = KubernetesDecorator.defaults
    cpu = res.get("cpu") or defaults["cpu"]
    cpu = int(cpu) if float(cpu).is_integer() else cpu
    return {"cpu": str(cpu),
            "memory": f"{res.get('memory') or defaults['memory']}M",
            "ephemeral-storage": f"{res.get('disk') or defaults['disk']}M"}


# --- the rendered WorkflowTemplate -------------------------------------------------------------


def test_every_pod_in_the_workflow_template_is_a_valid_v1_pod(workflow_template):
    pods = pod_templates(workflow_template)
    assert set(STEPS) <= set(pods), sorted(pods)
    for name, template in pods.items():
        pod = as_pod(workflow_template, template)
        try:
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"template {name}: {exc.message} at {list(exc.absolute_path)}")
        for container in pod["spec"]["containers"]:
            for kind in ("requests", "limits"):
                for value in container.get("resources", {}).get(kind, {}).values():
                    parse_quantity(value)  # raises on anything Kubernetes would refuse


def test_the_schema_check_is_live(workflow_template):
    """A typo'd field must fail validation, or the test above proves nothing."""
    pod = as_pod(workflow_template, pod_templates(workflow_template)["train"])
    pod["spec"]["containers"][0]["resource"] = {"requests": {"cpu": "1"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_train_pod_gets_exactly_the_spec(workflow_template, gke):
    k8s = gke["compute"]["kubernetes"]
    train = pod_templates(workflow_template)["train"]
    resources = train["container"]["resources"]
    want = expected_resources(k8s["train"])
    assert want == {"cpu": "2", "memory": "8192M", "ephemeral-storage": "20480M"}
    assert resources["requests"] == want
    assert resources["limits"] == want
    assert parse_quantity(resources["limits"]["memory"]) == 8192 * 10**6
    assert train["container"]["image"] == k8s["image"] == "ghcr.io/acme/shardfit:0.1"
    assert workflow_template["metadata"]["namespace"] == k8s["namespace"] == "ml"
    assert train["serviceAccountName"] == k8s["service_account"] == "shardfit"
    assert train["nodeSelector"] == k8s["node_selector"] == {"cloud.google.com/gke-nodepool": "highmem"}
    assert train["tolerations"] == k8s["tolerations"]
    assert len(k8s["tolerations"]) == 1
    assert not train["container"].get("envFrom"), "secrets: [] must mount no Kubernetes secret"


def test_join_pod_gets_the_join_resources(workflow_template, gke):
    k8s = gke["compute"]["kubernetes"]
    join = pod_templates(workflow_template)["join"]
    want = expected_resources(k8s["join"])
    assert want == {"cpu": "2", "memory": "16384M", "ephemeral-storage": "10240M"}  # disk: Metaflow's default
    assert join["container"]["resources"]["requests"] == want
    assert join["container"]["resources"]["limits"] == want
    assert join["container"]["image"] == k8s["image"]
    assert join["serviceAccountName"] == k8s["service_account"]
    assert join["nodeSelector"] == k8s["node_selector"]
    assert join["tolerations"] == k8s["tolerations"]


def test_other_steps_run_on_kubernetes_with_metaflow_defaults(workflow_template, gke):
    """Argo runs every step as a pod: start/partition/end get plain @kubernetes from the environment.

    Their image and service account come from METAFLOW_KUBERNETES_CONTAINER_IMAGE /
    _SERVICE_ACCOUNT (the runbook sets both to the spec's), not from the spec; their
    resources are Metaflow's defaults (Burstable, no limits) and no train values leak in.
    """
    train_resources = expected_resources(gke["compute"]["kubernetes"]["train"])
    for name in ("start", "partition", "end"):
        t = pod_templates(workflow_template)[name]
        res = t["container"]["resources"]
        assert res["requests"] == expected_resources({}) == {
            "cpu": "1", "memory": "4096M", "ephemeral-storage": "10240M"}, name
        assert res["requests"] != train_resources
        assert not res.get("limits"), name
        assert t["container"]["image"] == RUNBOOK_ENV["METAFLOW_KUBERNETES_CONTAINER_IMAGE"]
        assert t["serviceAccountName"] == RUNBOOK_ENV["METAFLOW_KUBERNETES_SERVICE_ACCOUNT"]
        assert not t.get("nodeSelector") and not t.get("tolerations"), name


def _bootstrap_pip_packages(command: str) -> list[str]:
    """The packages Metaflow's pod bootstrap pip-installs unless METAFLOW_SKIP_INSTALL_DEPENDENCIES is set."""
    match = re.search(r"if \[ -z \$METAFLOW_SKIP_INSTALL_DEPENDENCIES \]; then ([^;]*pip install[^;]*); fi",
                      command)
    assert match, "Metaflow's bootstrap no longer guards its pip install with METAFLOW_SKIP_INSTALL_DEPENDENCIES"
    return [w for w in shlex.split(match.group(1)) if not w.startswith("-") and w not in
            ("python", "-m", "pip", "install") and "/" not in w]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (DEPLOY / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_pods_start_without_pip_installs(workflow_template):
    """The image sets the variable that skips the bootstrap's pip install and bakes in what it installs."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ENV METAFLOW_SKIP_INSTALL_DEPENDENCIES=1$", dockerfile, re.M)
    pins = _pins()
    for name in STEPS:
        command = " ".join(pod_templates(workflow_template)[name]["container"]["command"])
        wanted = _bootstrap_pip_packages(command)
        assert "simple-gcp-object-downloader" in wanted and "download-gcp-object" in command
        # google-cloud-secret-manager serves only @secrets, which the flow does not use.
        missing = [p for p in wanted if canonicalize_name(p) not in pins
                   and p != "google-cloud-secret-manager"]
        assert not missing, f"{name}: deploy/requirements.txt lacks {missing}"


# --- the image's pins and Dockerfile -----------------------------------------------------------


def test_requirements_pin_every_pyproject_dependency():
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency in pyproject.toml but not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} is outside pyproject.toml's {req.specifier}")


def test_dockerfile_builds_the_project_on_python_311_slim():
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    assert "pip install -r deploy/requirements.txt" in text
    assert "pip install --no-deps ." in text and "pip check" in text
    for path in ("pyproject.toml", "shardfit/", "mergers/", "deploy/requirements.txt"):
        assert re.search(rf"^COPY {re.escape(path)} ", text, re.M), path
    assert re.search(r"^USER (?!0\b|root\b)", text, re.M), "pods should not run as root"


# --- the mutator -------------------------------------------------------------------------------


def test_mutator_passes_the_spec_values_unchanged(gke):
    k8s = gke["compute"]["kubernetes"]
    train = kubernetes_kwargs(k8s, "train")
    assert train == {
        "qos": "Guaranteed",
        "image": "ghcr.io/acme/shardfit:0.1", "namespace": "ml", "service_account": "shardfit",
        "node_selector": {"cloud.google.com/gke-nodepool": "highmem"},
        "tolerations": k8s["tolerations"], "secrets": [],
        "cpu": 2, "memory": 8192, "disk": 20480,
    }
    assert isinstance(train["cpu"], int)
    join = kubernetes_kwargs(k8s, "join")
    assert {k: join[k] for k in ("cpu", "memory")} == {"cpu": 2, "memory": 16384}
    assert "disk" not in join
    for step in ("start", "partition", "end"):
        assert kubernetes_kwargs(k8s, step) is None


def _show_decorators(stdout: str) -> dict[str, list[str]]:
    """Step name -> the decorators `show` prints above it."""
    decorators: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("@"):
            pending.append(line[1:].strip())
        elif line.startswith("Step "):
            decorators[line.split()[1]] = pending
            pending = []
    return decorators


def test_no_compute_section_means_no_kubernetes_decorator(tmp_path, gcs):
    tiny = write_spec(tmp_path, small_spec(tmp_path))
    proc = run_flow(["--config", "spec", str(tiny), "show"], env=_hermetic_env())
    assert proc.returncode == 0, proc.stderr
    shown = _show_decorators(proc.stdout)
    assert set(shown) == set(STEPS)
    assert not any("kubernetes" in d for decos in shown.values() for d in decos), shown

    proc = run_flow(["--datastore=gs", "--config", "spec", str(GKE_SPEC), "show"], env=_argo_env(gcs))
    assert proc.returncode == 0, proc.stderr
    shown = _show_decorators(proc.stdout)
    assert {s for s, decos in shown.items() if "kubernetes" in decos} == {"train", "join"}


def test_with_kubernetes_still_works_as_metaflow_documents(gcs):
    """`--with kubernetes:...` decorates the steps the spec left alone; train/join keep the spec's."""
    proc = render_argo(_argo_env(gcs), "--with", "kubernetes:cpu=3,memory=5000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    pods = pod_templates(_json(proc.stdout))
    assert pods["start"]["container"]["resources"]["requests"]["cpu"] == "3"
    assert pods["end"]["container"]["resources"]["requests"]["memory"] == "5000M"
    assert pods["train"]["container"]["resources"]["requests"]["cpu"] == "2"
    assert pods["join"]["container"]["resources"]["requests"]["memory"] == "16384M"


def test_argo_refuses_a_namespace_other_than_the_specs(gcs):
    """Why the runbook sets METAFLOW_KUBERNETES_NAMESPACE to the spec's namespace."""
    proc = render_argo(_argo_env(gcs, METAFLOW_KUBERNETES_NAMESPACE="default"))
    assert proc.returncode != 0
    assert "compute.kubernetes.namespace is 'ml': set METAFLOW_KUBERNETES_NAMESPACE=ml" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_argo_needs_the_image_for_the_other_steps(gcs):
    env = _argo_env(gcs)
    env.pop("METAFLOW_KUBERNETES_CONTAINER_IMAGE")
    proc = render_argo(env)
    assert proc.returncode != 0
    assert "set METAFLOW_KUBERNETES_CONTAINER_IMAGE=ghcr.io/acme/shardfit:0.1" in proc.stderr


def test_local_run_without_compute_is_unchanged(tmp_path):
    tiny = write_spec(tmp_path, small_spec(tmp_path))
    proc = run_flow(["run", "--spec", str(tiny)], env=_hermetic_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "kubernetes" not in (proc.stdout + proc.stderr).lower()
    assert len(list((tmp_path / "models" / "tiny-rf").glob("*/manifest.json"))) == 1


def test_kubernetes_spec_with_local_datastore_is_refused_before_any_task(tmp_path):
    root = tmp_path / "mf"
    root.mkdir()
    proc = run_flow(["run", "--spec", str(GKE_SPEC)],
                    env=_hermetic_env(METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root)))
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "compute.kubernetes" in lines[0]
    assert "--datastore=gs" in lines[0] and "METAFLOW_DATASTORE_SYSROOT_GS" in lines[0]
    assert "Workflow starting" not in proc.stdout and "Task is starting" not in proc.stdout
    assert not any(root.rglob("*")), "nothing may be written to the datastore"


# --- the code package --------------------------------------------------------------------------


def _repo_py_files() -> set[str]:
    return {str(p.relative_to(ROOT)) for name in SHIPPED_PACKAGES for p in (ROOT / name).rglob("*.py")
            if "__pycache__" not in p.parts}


def test_package_files_cover_both_packages():
    assert {arcname for _, arcname in package_files()} == _repo_py_files()


def test_code_package_ships_shardfit_and_mergers(tmp_path):
    tiny = write_spec(tmp_path, small_spec(tmp_path))
    env = _hermetic_env()
    proc = run_flow(["--config", "spec", str(tiny), "package", "list", "--archive"], env=env)
    assert proc.returncode == 0, proc.stderr
    listed = set((proc.stdout + proc.stderr).split())  # Metaflow echoes the list to stderr
    assert "train.py" in listed
    missing = _repo_py_files() - listed
    assert not missing, f"not in the code package: {sorted(missing)}"


def test_a_pod_imports_shardfit_from_the_code_package(tmp_path):
    """Extract the package as the pod bootstrap does: every shardfit/mergers module must come from it."""
    tiny = write_spec(tmp_path, small_spec(tmp_path))
    archive = tmp_path / "job.tar"
    proc = run_flow(["--config", "spec", str(tiny), "package", "save", str(archive)],
                    env=_hermetic_env())
    assert proc.returncode == 0, proc.stderr
    pod = tmp_path / "pod"
    pod.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(pod, filter="data")
    modules = sorted(arc[:-3].replace("/", ".").removesuffix(".__init__") for arc in _repo_py_files()
                     if not arc.endswith("__main__.py"))
    # The image has no editable install: drop this venv's finder, which would otherwise
    # resolve any module missing from the package straight from the checkout.
    probe = ("import importlib, json, sys; "
             "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
             "sys.path[:] = [p for p in sys.path if '__editable__' not in p]; "
             "[importlib.import_module(m) for m in sys.argv[1:]]; "
             "print(json.dumps({m: sys.modules[m].__file__ for m in sys.argv[1:]}))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(pod / ".mf_code")  # what the bootstrap exports
    # `python -c` puts the working directory first on sys.path, as `python train.py` puts its folder.
    out = subprocess.run([sys.executable, "-c", probe, *modules], cwd=pod, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    files = json.loads(out.stdout)
    assert set(files) == set(modules)
    outside = {m: f for m, f in files.items() if not Path(f).resolve().is_relative_to(pod.resolve())}
    assert not outside, outside


# --- RBAC and the service account --------------------------------------------------------------


def _manifests(*names: str) -> list[dict]:
    docs: list[dict] = []
    for name in names:
        docs += [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return docs


def test_deploy_manifests_are_valid_kubernetes_objects():
    docs = _manifests("serviceaccount.yaml", "role.yaml", "rolebinding.yaml")
    assert {d["kind"] for d in docs} == {"ServiceAccount", "Role", "RoleBinding"}
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        assert doc["metadata"]["namespace"] == "ml"


def test_roles_grant_nothing_on_secrets_or_configmaps_and_no_wildcards():
    roles = _manifests("role.yaml")
    assert roles and all(r["kind"] == "Role" for r in roles), "namespaced Roles only, no ClusterRole"
    for role in roles:
        for rule in role["rules"]:
            resources = {r.split("/")[0] for r in rule["resources"]}
            assert not resources & {"secrets", "configmaps"}, (role["metadata"]["name"], rule)
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
                assert not any("*" in v for v in rule.get(key, [])), (role["metadata"]["name"], rule)
            assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate", "deletecollection"}
            assert "resourceNames" not in rule or rule["resourceNames"]
            assert not {"pods/exec", "pods/attach", "serviceaccounts/token"} & set(rule["resources"])


def test_roles_cover_what_metaflow_calls():
    granted = {(g, r, v) for role in _manifests("role.yaml") for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    needed = {("batch", "jobs", "create"), ("batch", "jobs", "get"), ("batch", "jobs", "patch"),
              ("", "pods", "list"),
              ("argoproj.io", "workflowtemplates", "get"), ("argoproj.io", "workflowtemplates", "create"),
              ("argoproj.io", "workflowtemplates", "update"), ("argoproj.io", "cronworkflows", "get"),
              ("argoproj.io", "workflows", "create"), ("argoproj.io", "sensors", "delete"),
              ("argoproj.io", "workflowtaskresults", "create"), ("argoproj.io", "workflowtaskresults", "patch")}
    assert needed <= granted, needed - granted


def test_bindings_point_at_the_specs_service_account(gke):
    k8s = gke["compute"]["kubernetes"]
    roles = {r["metadata"]["name"] for r in _manifests("role.yaml")}
    bindings = _manifests("rolebinding.yaml")
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] in roles
    executor = next(b for b in bindings if b["roleRef"]["name"] == "shardfit-executor")
    assert executor["subjects"] == [{"kind": "ServiceAccount", "name": k8s["service_account"],
                                     "namespace": k8s["namespace"]}]
    (sa,) = _manifests("serviceaccount.yaml")
    assert sa["metadata"]["name"] == k8s["service_account"]
    assert sa["metadata"]["namespace"] == k8s["namespace"]
    gsa = sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]@[-A-Za-z0-9_]+\.iam\.gserviceaccount\.com", gsa), gsa
