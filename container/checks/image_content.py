"""What the serving image holds, read from its config and from a probe run inside it.

The promises: it runs as uid 10001 with a HEALTHCHECK on /health/ready and no VOLUME; it
carries no torch, no pip (not even one the base's python could import) and no compiler;
onnxruntime has the providers its variant is built for, and on the GPU variant every
library of the CUDA provider and cuDNN resolves except the driver, which the NVIDIA
Container Toolkit mounts at run time.
"""

from __future__ import annotations

import json

from container.checks.harness import expect
from container.podman import Podman

PROBE = r"""
import glob, importlib.util, json, os, shutil, subprocess, sys
site = "/opt/venv/lib/python3.11/site-packages"
def missing_libraries(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    return sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
report = {
    "uid": os.getuid(), "gid": os.getgid(),
    "python": sys.executable,
    "torch": importlib.util.find_spec("torch") is not None,
    "pip_on_path": shutil.which("pip") or shutil.which("pip3"),
    "pip_packages": sorted(glob.glob("/usr/**/site-packages/pip", recursive=True)
                           + glob.glob("/usr/lib/python3/dist-packages/pip")
                           + glob.glob("/opt/**/site-packages/pip", recursive=True)),
    "torch_packages": sorted(glob.glob("/usr/**/site-packages/torch", recursive=True)
                             + glob.glob("/opt/**/site-packages/torch", recursive=True)),
    "compilers": {t: shutil.which(t) for t in ("cc", "gcc", "g++", "c++", "clang", "ld", "as",
                                               "make") if shutil.which(t)},
    "base_pythons_with_pip": [p for p in sorted(set(glob.glob("/usr/local/bin/python3*")
                                                    + glob.glob("/usr/bin/python3*")))
                              if os.access(p, os.X_OK) and not p.endswith("-config")
                              and subprocess.run([p, "-c", "import pip"],
                                                 capture_output=True).returncode == 0],
}
import onnxruntime as ort
report["onnxruntime"] = ort.__version__
report["providers"] = ort.get_available_providers()
capi = os.path.dirname(ort.__file__) + "/capi"
cuda = glob.glob(capi + "/libonnxruntime_providers_cuda.so")
report["cuda_provider_missing"] = missing_libraries(cuda[0]) if cuda else None
cudnn = glob.glob(site + "/nvidia/cudnn/lib/libcudnn.so.*")
report["cudnn_missing"] = missing_libraries(cudnn[0]) if cudnn else None
print(json.dumps(report))
"""


def inside_image(podman: Podman, image: str, variant: str) -> list[str]:
    """No torch, pip or compiler; uid 10001; onnxruntime's providers as the variant promises."""
    inspected = podman.inspect(image, kind="image")
    config = inspected["Config"]
    expect(config.get("User") == "10001:10001", f"image user is {config.get('User')!r}")
    expect(config.get("Cmd") == ["alexnet", "serve"], f"CMD is {config.get('Cmd')}")
    # podman keeps HEALTHCHECK beside Config (Docker's format; the OCI one has no such field).
    health = (inspected.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test", [])
    expect("/health/ready" in " ".join(health), f"no HEALTHCHECK on /health/ready: {health}")
    expect(not config.get("Volumes"), f"VOLUME in the image: {config.get('Volumes')}")
    done = podman.run_once(image, "python", "-c", PROBE)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    expect((report["uid"], report["gid"]) == (10001, 10001), f"runs as {report['uid']}")
    expect(not report["torch"] and not report["torch_packages"], f"torch: {report}")
    expect(not report["pip_on_path"] and not report["pip_packages"], f"pip: {report}")
    expect(not report["base_pythons_with_pip"], f"pip importable: {report}")
    expect(not report["compilers"], f"compilers: {report['compilers']}")
    lines = [
        f"image {image}: user {config['User']}, CMD {config['Cmd']}, HEALTHCHECK {health[:2]}...",
        f"  inside: uid/gid {report['uid']}/{report['gid']}; torch: none; pip: none (no module, "
        f"no command, base python cannot import it); compilers: none",
        f"  onnxruntime {report['onnxruntime']}: providers {report['providers']}",
    ]
    if variant == "gpu":
        expect("CUDAExecutionProvider" in report["providers"], "no CUDA provider in the build")
        # libcuda.so.1 is the driver: the NVIDIA Container Toolkit mounts it at run time.
        for key in ("cuda_provider_missing", "cudnn_missing"):
            found = report[key]
            expect(found is not None and set(found) <= {"libcuda.so.1"}, f"{key}: {found}")
        lines.append(
            "  CUDA provider and cuDNN: every library resolves through ld.so.conf except "
            "libcuda.so.1 (the driver, mounted by the NVIDIA Container Toolkit)"
        )
    else:
        # The plain wheel also lists AzureExecutionProvider (remote endpoints, unused here).
        gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(report["providers"])
        expect("CPUExecutionProvider" in report["providers"] and not gpu, f"{report['providers']}")
    return lines
