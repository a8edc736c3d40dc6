"""What users install: the sdist and wheel, installed into a fresh virtualenv without test
extras, then used from there (version, offline embed, serve, the tray app, a PyInstaller build).

Nothing here imports localembed from the source tree: every command runs the virtualenv's own
interpreter and console script from a directory outside the checkout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from localembed import __version__
from localembed.models.starter import STARTER_FILE
from tests.conftest import ARTIFACTS, ROOT, wait_until
from tests.fixtures.desktop import screenshot, wait_for_icon
from tests.fixtures.server import health

pytestmark = pytest.mark.slow

MAX_VENV_BYTES = 300 * 1024 * 1024
HEAVY = ("torch", "transformers", "sentence_transformers", "nvidia", "triton", "scipy",
         "sklearn", "sympy")


@dataclass
class Installed:
    venv: Path
    wheel: Path
    sdist: Path
    install_seconds: float

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "localembed"


def _du(path: Path) -> int:
    """Bytes on disk, as `du -s` counts them."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the sdist, then the wheel from it (as PyPI users get), into a fresh venv."""
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next(out.glob("localembed-*.whl"))
    sdist = next(out.glob("localembed-*.tar.gz"))
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    started = time.monotonic()
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    return Installed(venv, wheel, sdist, seconds)


def run_installed(installed: Installed, home: Path, *args: str, timeout: float = 300,
                  **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin", "LOCALEMBED_HOME": str(home),
               "HF_HUB_OFFLINE": "1", "HOME": str(home), **env}
    return subprocess.run([str(installed.script), *args], capture_output=True, text=True,
                          env=environ, cwd=home.parent, timeout=timeout)


def tracked(folder: str) -> set[str]:
    files = subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    return {f for f in files if not f.endswith("/.gitkeep")}


def test_the_wheel_holds_every_tracked_file_of_the_package_and_the_web_ui(
        installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = tracked("localembed") | {f.replace("webui/", "localembed/webui/", 1)
                                        for f in tracked("webui")}
    assert expected, "git ls-files found nothing"
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}"
    assert f"localembed/bundled/{STARTER_FILE}" in names


def test_the_virtualenv_is_light_and_free_of_pytorch(installed: Installed) -> None:
    site = next((installed.venv / "lib").glob("python*/site-packages"))
    present = sorted(p.name for p in site.iterdir() if p.name.split("-")[0].lower() in HEAVY)
    assert present == []
    size = _du(installed.venv)
    report = {"venv_bytes": size, "install_seconds": round(installed.install_seconds, 1),
              "wheel_bytes": installed.wheel.stat().st_size,
              "sdist_bytes": installed.sdist.stat().st_size}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "install-size.json").write_text(json.dumps(report, indent=2))
    print(f"installed: {report}")
    assert size <= MAX_VENV_BYTES, f"{size / 2**20:.0f} MiB"


def test_version_from_the_installed_script(installed: Installed, tmp_path: Path) -> None:
    result = run_installed(installed, tmp_path / "home", "--version")
    assert result.returncode == 0 and __version__ in result.stdout, result.stderr


def test_embed_works_offline_right_after_install(installed: Installed, tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_installed(installed, home, "embed", "hello")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["index"] == 0 and len(row["embedding"]) == 384
    assert not (home / "models").exists() or not list((home / "models").glob("*.gguf"))


def _start(installed: Installed, home: Path, *args: str, **env: str) -> subprocess.Popen:
    environ = {"PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin", "LOCALEMBED_HOME": str(home),
               "HF_HUB_OFFLINE": "1", "HOME": str(home), "PYTHONUNBUFFERED": "1", **env}
    return subprocess.Popen([str(installed.script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ, cwd=home.parent)


def _embed(url: str, text: str) -> dict:
    req = urllib.request.Request(url + "/v1/embeddings", data=json.dumps({"input": text}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    return err


def test_serve_from_the_installed_script_answers_embeddings(installed: Installed,
                                                            tmp_path: Path) -> None:
    proc = _start(installed, tmp_path / "home", "--port", "0")  # serve is the default command
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        body = _embed(url, "installed")
        assert body["model"] == "all-minilm-l6-v2" and len(body["data"][0]["embedding"]) == 384
    finally:
        err = _stop(proc)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_app_from_the_installed_script_shows_its_tray_icon_and_serves(
        installed: Installed, display: str, tmp_path: Path) -> None:
    proc = _start(installed, tmp_path / "home", "app", "--no-browser", "--port", "0",
                  DISPLAY=display)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
        # listening at once; the icon turns blue once the model is loaded
        assert wait_until(lambda: health(url), 60)
        icon = wait_for_icon(display)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(display, ARTIFACTS / "installed-tray.png")
        assert icon > 50
        assert len(_embed(url, "tray")["data"][0]["embedding"]) == 384
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    assert "Tray icon shown" in err and "Traceback" not in err, err


def test_pyinstaller_build_of_the_installed_package_serves(installed: Installed,
                                                           tmp_path: Path) -> None:
    """The frozen app is built from the virtualenv's site-packages, not the checkout."""
    pip = subprocess.run([str(installed.python), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", "pyinstaller>=6.0"],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "pyi"
    work.mkdir()
    env = {"PATH": f"{installed.venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    build = subprocess.run([str(installed.python), "-m", "PyInstaller", "--noconfirm",
                            "--log-level", "WARN", "--distpath", str(work / "dist"),
                            "--workpath", str(work / "build"),
                            str(ROOT / "installer" / "localembed.spec")],
                           capture_output=True, text=True, cwd=work, env=env, timeout=1200)
    assert build.returncode == 0, build.stderr[-3000:]
    app = work / "dist" / "localembed"
    exe = app / "localembed"
    assert (app / "_internal" / "localembed" / "bundled" / STARTER_FILE).is_file()
    assert not list(app.rglob("torch")), "the frozen app carries PyTorch"
    home = tmp_path / "home"
    env = {**os.environ, "LOCALEMBED_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("DISPLAY", None)
    proc = subprocess.Popen([str(exe), "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=work)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://"), proc.stderr.read()  # type: ignore[union-attr]
        body = _embed(url, "frozen")  # waits for the model's load
        assert len(body["data"][0]["embedding"]) == 384 and body["model"] == "all-minilm-l6-v2"
        assert health(url)
    finally:
        _stop(proc, signal.SIGINT)
    assert proc.returncode == 0

    # The Linux user install of that build, and its uninstall.
    user = tmp_path / "user"
    script = ROOT / "installer" / "linux" / "install.sh"
    env = {"HOME": str(user), "PATH": os.environ["PATH"]}
    done = subprocess.run(["sh", str(script), str(app)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    desktop = user / ".local/share/applications/localembed.desktop"
    assert "Exec=" in desktop.read_text() and "Icon=localembed" in desktop.read_text()
    assert (user / ".local/share/icons/hicolor/256x256/apps/localembed.png").exists()
    version = subprocess.run([str(user / ".local/bin/localembed"), "--version"],
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and __version__ in version.stdout
    gone = subprocess.run(["sh", str(script), "--uninstall"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert gone.returncode == 0 and not desktop.exists()
    assert not (user / ".local/bin/localembed").exists()
