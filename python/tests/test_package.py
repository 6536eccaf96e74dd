"""The package's shape: stubs that match the Rust module, docstrings, Optuna's module names."""

import ast
import inspect
from pathlib import Path

import caviar
from caviar import _caviar


def stub_names():
    tree = ast.parse((Path(caviar.__file__).parent / "_caviar.pyi").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            methods = set()
            if isinstance(node, ast.ClassDef):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            names[node.name] = methods
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = set()
    return names


def test_the_stubs_describe_the_rust_module():
    stubs = stub_names()
    public = {n for n in dir(_caviar) if not n.startswith("_")}
    assert set(stubs) == public
    for name, methods in stubs.items():
        obj = getattr(_caviar, name)
        for method in methods:
            assert hasattr(obj, method), f"{name}.{method} is in the stub, not the module"
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            real = {m for m in dir(obj) if not m.startswith("_")}
            assert real <= methods, f"{name}: {real - methods} missing from the stub"


def test_public_names_have_docstrings():
    for module in (caviar, caviar.samplers, caviar.pruners):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue
            assert obj.__doc__ and obj.__doc__.strip(), f"{module.__name__}.{name}"
    for method in ("suggest_float", "suggest_int", "suggest_categorical", "report", "should_prune"):
        assert getattr(caviar.Trial, method).__doc__, method


def test_optunas_module_names_exist():
    assert caviar.trial.TrialState.PRUNED == 2
    assert caviar.study.StudyDirection.MAXIMIZE == 2
    assert caviar.exceptions.TrialPruned is caviar.TrialPruned
    assert caviar.study.create_study is caviar.create_study
    assert issubclass(caviar.samplers.TPESampler, caviar.samplers.BaseSampler)
    assert issubclass(caviar.pruners.HyperbandPruner, caviar.pruners.BasePruner)
