"""The import order of the apps: `models_registry` <- `inspection` <- `labeling` <- `workers`, with
`config` on top, and the vision library `models_registry/ml` free of Django. An import against
that order, anywhere in the code (inside functions too), fails here and names the line."""

from __future__ import annotations

import ast
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
LAYERS = ["models_registry", "inspection", "labeling", "workers", "config"]  # lowest first
DJANGO_FREE = "models_registry/ml"
DJANGO_PACKAGES = {"django", "rest_framework", "rest_framework_api_key", "channels", "celery"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def code_files(package: str) -> list[Path]:
    return sorted((REPOSITORY / package).rglob("*.py"))


def test_apps_import_only_the_layers_below_them():
    wrong = []
    for rank, package in enumerate(LAYERS):
        above = set(LAYERS[rank + 1 :])
        for path in code_files(package):
            for line, module in imported_modules(path):
                if module.split(".")[0] in above:
                    wrong.append(f"{path.relative_to(REPOSITORY)}:{line} imports {module}")
    assert not wrong, (
        "imports against models_registry <- inspection <- labeling <- workers <- config:\n" + "\n".join(wrong)
    )


def test_the_vision_library_imports_no_django():
    wrong = [
        f"{path.relative_to(REPOSITORY)}:{line} imports {module}"
        for path in code_files(DJANGO_FREE)
        for line, module in imported_modules(path)
        if module.split(".")[0] in DJANGO_PACKAGES
        or module.split(".")[0] in LAYERS[1:]
        or (module.startswith("models_registry.") and not module.startswith("models_registry.ml"))
    ]
    assert not wrong, "models_registry/ml must stay Django-free:\n" + "\n".join(wrong)


def test_the_check_sees_an_import_against_the_order(tmp_path):
    example = tmp_path / "example.py"
    example.write_text("def f():\n    from workers.models import TrainingJob\n")
    assert imported_modules(example) == [(2, "workers.models")]
