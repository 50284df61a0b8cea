"""dvc.yaml agrees with the stage modules, params.yaml and the code each stage imports."""
import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted(p.stem for p in (ROOT / "pipeline" / "stages").glob("*.py")
                if p.stem != "__init__")
SHARED_SECTIONS = {"seed", "paths", "dataset"}


@pytest.fixture(scope="module")
def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_one_dvc_stage_per_module(dvc_stages):
    assert sorted(dvc_stages) == STAGES


def test_every_params_section_belongs_to_a_stage(real_params):
    assert set(real_params) - SHARED_SECTIONS <= set(STAGES)


@pytest.mark.parametrize("name", STAGES)
def test_stage_wiring(dvc_stages, real_params, name):
    stage = dvc_stages[name]
    assert stage["cmd"] == f"python -m pipeline.stages.{name}"
    assert "seed" in stage["params"]
    if name in real_params:
        assert name in stage["params"]
    metrics = [next(iter(m)) if isinstance(m, dict) else m for m in stage["metrics"]]
    assert metrics == [f"${{paths.metrics}}/{name}.json"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
    assert all(out.startswith("${paths.") for out in outs)


@pytest.mark.parametrize("name", STAGES)
def test_deps_cover_every_imported_pipeline_module(dvc_stages, name):
    deps = [d for d in dvc_stages[name]["deps"] if not d.startswith("${")]
    for path in _imported_files(ROOT / "pipeline" / "stages" / f"{name}.py"):
        rel = path.relative_to(ROOT).as_posix()
        assert any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps), \
            f"stage {name}: {rel} is imported but not in its dvc.yaml deps"


def _imported_files(start: Path) -> set[Path]:
    """Files of the `pipeline` package that `start` imports, transitively (docstring-only
    package __init__ files excluded: they hold no code)."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("pipeline")]
            for name in names:
                parts = name.split(".")
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
                todo += [p for i in range(1, len(parts))
                         if (p := ROOT / Path(*parts[:i]) / "__init__.py").is_file()]
                base = ROOT / Path(*parts)
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.is_file():
                        todo.append(candidate)
    return {p for p in seen if not _docstring_only(p)}


def _docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def _pipeline_imports(path: Path) -> set[str]:
    """Every `pipeline...` module name `path` imports (as written, at any depth)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("pipeline")}
    return names


MODULES = sorted(p for p in (ROOT / "pipeline").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dependencies_run_one_way(path):
    """stages -> packages -> core: no stage imports another stage or the CLI, no package
    imports a stage, and core imports nothing else of the pipeline."""
    rel = path.relative_to(ROOT / "pipeline").parts
    imported = _pipeline_imports(path)
    if rel[0] == "stages":
        assert not {n for n in imported if n.startswith("pipeline.stages")}
        assert not {n for n in imported if n.startswith("pipeline.serve.recommend")
                    and not n.startswith("pipeline.serve.recommender")}
    else:
        assert not {n for n in imported if n.startswith("pipeline.stages")}
    if rel[0] == "core":
        assert all(n.startswith("pipeline.core") for n in imported)


def test_pipeline_is_packages_not_a_pile_of_modules():
    top = sorted(p.name for p in (ROOT / "pipeline").glob("*.py"))
    assert len(top) <= 5, top
    for path in MODULES + sorted((ROOT / "flows").glob("*.py")):
        assert len(path.read_text().splitlines()) <= 300, path
