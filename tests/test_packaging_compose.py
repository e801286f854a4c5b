"""docker-compose.yml and its CPU override, checked against the compose-spec schema.

No Docker engine (and no compose plugin) here: the files are parsed with PyYAML, the
override is merged the way Compose merges (mappings recursively, `!reset` removes), and
every form is validated by check-jsonschema's vendored compose-spec schema.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.test_packaging import DOCKERFILE, ROOT, dockerfile_stages, image_config, tool


class Reset:
    """Compose's `!reset VALUE`: in a merge, the key is removed; alone, it is VALUE."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor(
    "!reset",
    lambda loader, node: Reset(
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)


def load_compose(name: str) -> dict[str, Any]:
    return dict(yaml.load((ROOT / name).read_text(), Loader=ComposeLoader))


def strip_resets(value: Any) -> Any:
    if isinstance(value, Reset):
        return strip_resets(value.value)
    if isinstance(value, dict):
        return {key: strip_resets(item) for key, item in value.items()}
    return [strip_resets(item) for item in value] if isinstance(value, list) else value


def merge(base: Any, override: Any) -> Any:
    """Compose's merge for mappings (recursive) and `!reset`; other values are replaced."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return strip_resets(override)
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Reset):
            merged.pop(key, None)
        else:
            merged[key] = merge(base.get(key), value) if key in base else strip_resets(value)
    return merged


def compose_schema_errors(document: dict[str, Any], tmp_path: Path) -> str:
    """check-jsonschema's verdict with the compose-spec schema; empty when valid."""
    path = tmp_path / f"compose-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(document))
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_compose_files_validate(tmp_path: Path) -> None:
    base, cpu = load_compose("docker-compose.yml"), load_compose("docker-compose.cpu.yml")
    assert compose_schema_errors(base, tmp_path) == ""
    assert compose_schema_errors(strip_resets(cpu), tmp_path) == ""
    assert compose_schema_errors(merge(base, cpu), tmp_path) == ""
    typo = merge(
        base,
        {
            "services": {
                "alexnet": {
                    "deploy": {
                        "resources": {
                            "reservations": {
                                "devices": [
                                    {"driver": "nvidia", "count": 1, "capabilitiez": ["gpu"]}
                                ]
                            }
                        }
                    }
                }
            }
        },
    )
    assert "capabilitiez" in compose_schema_errors(typo, tmp_path)


def test_compose_reserves_the_gpu_and_the_override_removes_it() -> None:
    base, cpu = load_compose("docker-compose.yml"), load_compose("docker-compose.cpu.yml")
    gpu = [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("alexnet", "train"):
        assert base["services"][name]["deploy"]["resources"]["reservations"]["devices"] == gpu
        reservations = merge(base, cpu)["services"][name]["deploy"]["resources"]["reservations"]
        assert "devices" not in reservations
    assert merge(base, cpu)["services"]["alexnet"]["environment"]["ALEXNET_PROVIDER"] == "cpu"


def test_compose_serves_the_image_as_built() -> None:
    services = load_compose("docker-compose.yml")["services"]
    alexnet, train, image = services["alexnet"], services["train"], image_config()
    assert alexnet["build"]["target"] == list(dockerfile_stages(DOCKERFILE.read_text()))[-1]
    assert alexnet["healthcheck"]["test"] == ["CMD", *image["healthcheck"]]
    assert alexnet["ports"][0].endswith(f":{image['env']['ALEXNET_PORT']}")
    assert alexnet["restart"] == "on-failure:3" and alexnet["read_only"] is True
    models = alexnet["environment"]["ALEXNET_ARTIFACTS"]
    assert f"artifacts:{models}:ro" in alexnet["volumes"]
    assert train["profiles"] == ["train"] and train["build"]["target"] == "train"
    assert any(v.startswith("artifacts:/models") for v in train["volumes"])
    assert "--out /models" in train["command"][-1]
