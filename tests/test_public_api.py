"""Every ``__all__`` is honest and sorted, and the packages' public names are documented.

As anyio keeps its own: every module of ``actorbus``, ``actors``, ``bus`` and
``contracts`` has an ``__all__`` in ruff's RUF022 order naming only what it has;
each package exports every public class and function bound in it and defined in
its private modules, and each such name (with its public methods) has a docstring.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
from typing import Any

import pytest

PACKAGES = ("actorbus", "actors", "bus", "contracts")


def our_modules() -> list[str]:
    names: list[str] = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


MODULES = our_modules()


def isort_style(name: str) -> tuple[int, list[Any]]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def defined_here(module: types.ModuleType) -> set[str]:
    """Public classes and functions whose home is this module (for a package: the package)."""
    home = module.__name__
    is_package = hasattr(module, "__path__")
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        origin = getattr(value, "__module__", "") or ""
        if origin == home or (is_package and origin.startswith(f"{home}._")):
            names.add(name)
    return names


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_a_sorted_all_of_names_it_really_has(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert all(isinstance(item, str) for item in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert list(exported) == sorted(exported, key=isort_style), f"{name}.__all__ is not sorted"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_class_and_function_of_a_package_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    unexported = defined_here(module) - set(getattr(module, "__all__", ()))
    assert unexported == set(), f"{name} defines but does not export {sorted(unexported)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_star_import_gives_exactly_the_exported_names(package: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {package} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(importlib.import_module(package).__all__)


@pytest.mark.parametrize("package", ["actors", "bus", "contracts"])
def test_package_exports_are_the_package_own_definitions(package: str) -> None:
    module = importlib.import_module(package)
    for item in module.__all__:
        value = getattr(module, item)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith(f"{package}."), f"{package}.{item} is borrowed"


def public_docstring_gaps(module: types.ModuleType) -> list[str]:
    gaps = [] if module.__doc__ else [f"{module.__name__} (module)"]
    for item in getattr(module, "__all__", ()):
        value = getattr(module, item)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not value.__doc__:
            gaps.append(f"{module.__name__}.{item}")
        if not inspect.isclass(value):
            continue
        for attr, member in vars(value).items():
            if attr.startswith("_"):
                continue
            target = member.fget if isinstance(member, property) else member
            if isinstance(target, staticmethod | classmethod):
                target = target.__func__
            if inspect.isfunction(target) and not target.__doc__:
                gaps.append(f"{module.__name__}.{item}.{attr}")
    return gaps


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_have_docstrings(name: str) -> None:
    assert public_docstring_gaps(importlib.import_module(name)) == []


def test_the_checks_catch_a_dishonest_module() -> None:
    fake = types.ModuleType("bus._fake", None)

    def helper() -> None:
        pass

    class Undocumented:
        def method(self) -> None:
            pass

    for value in (helper, Undocumented):
        value.__module__ = "bus._fake"
    fake.helper = helper  # type: ignore[attr-defined]
    fake.Undocumented = Undocumented  # type: ignore[attr-defined]
    fake.__all__ = ["helper", "Undocumented"]  # type: ignore[attr-defined]
    assert fake.__all__ != sorted(fake.__all__, key=isort_style)
    assert defined_here(fake) == {"helper", "Undocumented"}
    assert public_docstring_gaps(fake) == [
        "bus._fake (module)",
        "bus._fake.helper",
        "bus._fake.Undocumented",
        "bus._fake.Undocumented.method",
    ]


def test_the_scan_sees_the_private_modules() -> None:
    expected = {"bus._runtime.cell", "bus._runtime.system", "contracts._errors", "actorbus.cli"}
    assert expected <= set(MODULES)
