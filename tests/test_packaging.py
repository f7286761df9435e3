"""The wheel installs simulators/, agents/, envs/ and conf/ inside the recoworld namespace."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked sources")
    out = tmp_path_factory.mktemp("dist")
    # Build from a copy of the tracked files so build/ and egg-info never touch the checkout.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)],
                   check=True, capture_output=True, text=True)
    return next(out.glob("recoworld-*.whl"))


def test_wheel_maps_the_top_level_folders_into_recoworld(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("simulators", "agents", "envs", "conf"):
        assert f"recoworld/{package}/__init__.py" in names
        assert not any(n.startswith(f"{package}/") for n in names), f"{package} installed top-level"
    shipped = {n for n in names if n.startswith("recoworld/conf/") and n.endswith(".yaml")}
    expected = {f"recoworld/conf/{p.relative_to(ROOT / 'conf').as_posix()}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == expected


def test_wheel_ships_every_source_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in ("recoworld/kernels/users_step.c", "recoworld/kernels/world_step.c", "recoworld/kernels/rng.c",
                   "recoworld/kernels/rng.h", "recoworld/kernels/layout.h"):
        assert source in names, f"{source}, a C kernel's source, must ship (package-data)"
    mapping = {"recoworld": "recoworld", "simulators": "recoworld/simulators", "agents": "recoworld/agents",
               "envs": "recoworld/envs", "conf": "recoworld/conf"}
    for folder, installed in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.relative_to(ROOT / folder).as_posix()
            assert f"{installed}/{relative}" in names, f"{folder}/{relative} is missing from the wheel: " \
                "add its package to [tool.setuptools] packages in pyproject.toml"


def test_installed_wheel_imports_all_four_subpackages(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    code = ("import recoworld, recoworld.simulators, recoworld.agents, recoworld.envs, recoworld.conf;"
            "import gymnasium as gym; env = gym.make('RecoWorld/Slate-v0'); env.reset(seed=0);"
            "print(recoworld.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(target))


def test_wheel_ships_the_type_marker_the_viewer_page_the_licence_and_one_version(wheel):
    import recoworld

    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert {"recoworld/py.typed", "recoworld/apps/view/viewer.html"} <= names
    info = next(n.rsplit("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert any(n.startswith(f"{info}/") and n.endswith("LICENSE") for n in names), "LICENSE must ship"
    metadata = archive.read(f"{info}/METADATA").decode()
    assert f"\nVersion: {recoworld.__version__}\n" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    assert any(line.startswith("Requires-Dist: gymnasium<2,>=1.1") or line.startswith("Requires-Dist: gymnasium>=1.1")
               for line in requires), requires
    assert not any("tqdm" in line for line in requires)
