"""The type stub (python/shmarray.pyi) and the docstrings cover the module's whole public API."""

from __future__ import annotations

import ast
import inspect

import shmarray
from conftest import PYTHON_DIR, REPO

STUB = REPO / "python" / "shmarray.pyi"


def stub_names() -> dict[str, set[str]]:
    """Top-level names of the stub -> names defined in their class body (empty for functions)."""
    tree = ast.parse(STUB.read_text())
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            names[node.name] |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = set()
    return names


def public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def test_stub_lists_every_public_name():
    stub = stub_names()
    assert public(shmarray) <= set(stub)
    assert set(stub) - {"_Shape", "_Path", "__version__"} <= public(shmarray)


def test_stub_lists_every_method_and_property():
    stub = stub_names()
    for cls in (shmarray.Client, shmarray.ArrayInfo, shmarray.ArrayHandle, shmarray.Lock,
                shmarray.Publisher, shmarray.Subscriber, shmarray.LoanContext,
                shmarray.SampleHandle):
        assert public(cls) <= stub[cls.__name__], cls.__name__


def test_everything_public_has_a_docstring():
    assert shmarray.__doc__ and "Client" in shmarray.__doc__
    for name in public(shmarray):
        obj = getattr(shmarray, name)
        if callable(obj):
            assert inspect.getdoc(obj), name
    for cls in (shmarray.Client, shmarray.Lock):
        for name in public(cls):
            if callable(getattr(cls, name)):
                assert inspect.getdoc(getattr(cls, name)), f"{cls.__name__}.{name}"


def test_build_tree_has_the_stub_next_to_the_module():
    assert (PYTHON_DIR / "shmarray.pyi").read_text() == STUB.read_text()
    assert any(PYTHON_DIR.glob("shmarray*.so"))
