"""The package's public face, packaging metadata and the README/CI contract."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pmnb

ROOT = Path(__file__).resolve().parent.parent


def test_public_face_sorted_and_importable():
    assert pmnb.__all__ == sorted(pmnb.__all__)
    for name in pmnb.__all__:
        assert hasattr(pmnb, name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", pmnb.__version__)


def test_errors_hierarchy():
    for cls in (pmnb.ValidationError, pmnb.StaleDataError, pmnb.DataError, pmnb.ChainError):
        assert issubclass(cls, pmnb.PmnbError)
    assert issubclass(pmnb.ValidationError, ValueError)


def test_core_never_imports_the_interactive_layer():
    code = ("import sys, pmnb, pmnb.pricing, pmnb.datasets, pmnb.cli, pmnb.vol, pmnb.book, pmnb.demo\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'pmnb_widgets', 'ipywidgets', 'IPython', 'voila', 'matplotlib', 'plotly'})\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_widgets_package_imports():
    import pmnb_widgets

    assert pmnb_widgets.__version__ == pmnb.__version__


def test_every_package_directory_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "pmnb").rglob("__init__.py")}
    assert found <= listed, found - listed
    assert cfg["tool"]["setuptools"]["package-dir"]["pmnb_widgets"] == "widgets"


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick, flags=re.S)


def test_readme_has_exactly_two_one_line_commands_and_ci_runs_the_test_one():
    cmds = _readme_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds), cmds
    serve, test = (c.split("#")[0].strip() for c in cmds)
    assert serve == "./dev.sh dashboards" and test == "./dev.sh test"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./dev\.sh test$", ci, flags=re.M), "CI must run the README's test command"
    assert "|| true" not in ci and "set -euo pipefail" in ci


def test_pytest_config_runs_every_marker_and_doctests():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in cfg["addopts"]
    assert "-m" not in cfg["addopts"].split()  # no marker is deselected
    markers = {m.split(":")[0] for m in cfg["markers"]}
    assert markers == {"slow", "browser", "chain", "notebooks"}


def test_shipped_files_exclude_macro_data():
    data = ROOT / "pmnb" / "datasets" / "data"
    assert not (data / "macro_daily.csv").exists()
    assert (ROOT / "pmnb" / "py.typed").exists()
    gitignore = (ROOT / ".gitignore").read_text()
    for pat in ("*.so", "build/", "pmnb/_core/_kernels.c", "node_modules/"):
        assert pat in gitignore


@pytest.mark.parametrize("args,code", [(["dashboards", "--dry-run"], 0),
                                       (["dashboards", "--port", "0", "--dry-run"], 2)])
def test_cli_dashboards_arguments(args, code, capsys):
    from pmnb.cli import main

    assert main(args) == code
    out = capsys.readouterr()
    if code == 0:
        assert "--Voila.port_retries=0" in out.out and "127.0.0.1" in out.out
    else:
        assert "port: got 0" in out.err


def test_cli_busy_port_fails_clearly(capsys):
    import socket

    from pmnb.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboards", "--port", str(port)]) == 2
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().err


def test_every_public_function_has_a_runnable_example():
    import importlib
    import inspect

    missing = []
    import pkgutil

    import pmnb as root

    names = ["pmnb"] + [m.name for m in pkgutil.walk_packages(root.__path__, "pmnb.")
                        if not any(part.startswith("_") for part in m.name.split("."))]
    assert {"pmnb.adl", "pmnb.margin.span", "pmnb.accessor"} <= set(names)
    for modname in names:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and ">>> " not in (obj.__doc__ or ""):
                missing.append(f"{modname}.{name}")
    assert not missing, missing


def test_readme_python_examples_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.+?)\n```", text, flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
