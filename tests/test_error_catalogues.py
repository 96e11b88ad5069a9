"""The error catalogues: every sentence in both languages with the same parameters,
every key the code raises present (with the parameters it is given), no key unused.

The code is read, not run: every place that names a catalogue key is found in the
syntax tree of ``services/`` and resolved against the imported modules
(``RatingRejected.because("already_rated", option=...)`` is the key
``rating_rejected.already_rated`` of ``RatingRejected.catalogue``). A key built at run
time would escape this test, so :meth:`AfinadorError.because` is always given a
literal reason.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeGuard

import pytest

from services.common.catalogue import COMMON, LANGUAGES, Catalogue, placeholders
from services.common.errors import AfinadorError
from services.evolution.errors import EVOLUTION
from services.gateway.errors import GATEWAY
from services.gateway.providers.messages import PREFIX, STEP_PREFIX
from services.optimizer.errors import OPTIMIZER
from services.reward.errors import REWARD

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = {c.name: c for c in (COMMON, GATEWAY, EVOLUTION, OPTIMIZER, REWARD)}
# Arguments of provider_error() that are not sentence parameters.
PROVIDER_ERROR_OPTIONS = {"retryable", "cls", "extra"}


@dataclass(frozen=True)
class Use:
    """One place in the code that names a catalogue key."""

    where: str
    catalogue: Catalogue
    key: str
    params: frozenset[str] | None  # None: not all known (``**kwargs``)
    exact: bool = True  # the parameters must be exactly the sentence's placeholders


def _source_files() -> list[Path]:
    return sorted(
        p
        for p in (ROOT / "services").rglob("*.py")
        if "tests" not in p.parts and "migrations" not in p.parts
    )


def _module(path: Path) -> ModuleType:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return importlib.import_module(name.removesuffix(".__init__"))


def _resolve(node: ast.expr, module: ModuleType, enclosing: str | None) -> Any:
    """The object a dotted name means in a module (``cls``: the enclosing class), or
    None. Only names and attributes are looked up; nothing is called."""
    if isinstance(node, ast.Name):
        if node.id == "cls" and enclosing:
            return getattr(module, enclosing, None)
        return getattr(module, node.id, None)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, module, enclosing)
        return None if owner is None else getattr(owner, node.attr, None)
    return None


def _literals(node: ast.expr | None) -> list[str | None] | None:
    """The strings an argument can be: a literal, or either branch of ``a if c else b``."""
    if node is None:
        return [None]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    return None


def _keywords(call: ast.Call, ignore: set[str] = frozenset()) -> frozenset[str] | None:  # type: ignore[assignment]
    if any(k.arg is None for k in call.keywords):
        return None
    return frozenset(k.arg for k in call.keywords if k.arg and k.arg not in ignore)


def _is_error_class(obj: Any) -> TypeGuard[type[AfinadorError]]:
    return isinstance(obj, type) and issubclass(obj, AfinadorError)


class _Finder(ast.NodeVisitor):
    def __init__(self, path: Path, module: ModuleType) -> None:
        self.path, self.module = path, module
        self.classes: list[str] = []
        self.uses: list[Use] = []
        self.problems: list[str] = []

    def _where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        enclosing = self.classes[-1] if self.classes else None
        func = node.func
        where = self._where(node)
        if isinstance(func, ast.Attribute) and func.attr == "because":
            owner = _resolve(func.value, self.module, enclosing)
            if not _is_error_class(owner):
                return
            reasons = _literals(node.args[0] if node.args else None)
            if reasons is None:
                self.problems.append(f"{where}: because() needs a literal reason")
                return
            for reason in reasons:
                key = owner.code if reason is None else f"{owner.code}.{reason}"
                self.uses.append(Use(where, owner.catalogue, key, _keywords(node, {"details"})))
        elif isinstance(func, ast.Attribute) and func.attr in ("sentence", "say"):
            catalogue = _resolve(func.value, self.module, enclosing)
            if not isinstance(catalogue, Catalogue) or not node.args:
                return
            keys = _literals(node.args[0])
            if keys is None:
                return  # a key held in a variable (a stored error said again)
            for literal in keys:
                assert literal is not None
                self.uses.append(Use(where, catalogue, literal, _keywords(node)))
        elif isinstance(func, ast.Name) and func.id == "provider_error" and node.args:
            for code in _literals(node.args[0]) or []:
                self.uses.append(
                    Use(
                        where,
                        GATEWAY,
                        f"{PREFIX}{code}",
                        _keywords(node, PROVIDER_ERROR_OPTIONS),
                        exact=False,
                    )
                )
        elif isinstance(func, ast.Name) and func.id == "_Transient" and node.args:
            for code in _literals(node.args[0]) or []:  # a reason, said inside another
                self.uses.append(Use(where, GATEWAY, f"{PREFIX}{code}", None))
        elif (
            isinstance(func, ast.Attribute)
            and func.attr == "__init__"
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "super"
            and not node.args
            and enclosing
        ):
            owner = getattr(self.module, enclosing, None)
            if _is_error_class(owner):  # super().__init__(**params): the code's sentence
                self.uses.append(Use(where, owner.catalogue, owner.code, _keywords(node)))
        elif not node.args:
            owner = _resolve(func, self.module, enclosing)
            if _is_error_class(owner) and owner.__init__ is AfinadorError.__init__:
                self.uses.append(Use(where, owner.catalogue, owner.code, _keywords(node)))


def _scan() -> tuple[list[Use], list[str], set[str]]:
    """Every use of a key, the problems found, and every other string literal."""
    uses: list[Use] = []
    problems: list[str] = []
    literals: set[str] = set()
    for path in _source_files():
        text = path.read_text(encoding="utf-8")
        if not any(
            word in text
            for word in (
                "because",
                "sentence(",
                ".say(",
                "provider_error",
                "super().__init__(",
                "Error(",
            )
        ):
            continue
        tree = ast.parse(text)
        finder = _Finder(path, _module(path))
        finder.visit(tree)
        uses += finder.uses
        problems += finder.problems
        codes = {
            id(n.value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "code" for t in n.targets)
        }
        literals |= {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in codes
        }
    return uses, problems, literals


@pytest.fixture(scope="module")
def scanned() -> tuple[list[Use], list[str], set[str]]:
    return _scan()


def _own_keys(catalogue: Catalogue) -> set[str]:
    return set(catalogue.own("es"))


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_every_key_has_both_sentences_with_the_same_placeholders(name: str) -> None:
    catalogue = CATALOGUES[name]
    es, en = catalogue.own("es"), catalogue.own("en")
    assert set(es) == set(en), f"{name}: keys in only one language: {set(es) ^ set(en)}"
    assert es, f"{name}: an empty catalogue"
    for key in es:
        assert es[key].strip() and en[key].strip(), f"{name}: {key} has an empty sentence"
        assert es[key] != en[key], f"{name}: {key} is not translated"
        assert placeholders(es[key]) == placeholders(en[key]), (
            f"{name}: {key} takes {sorted(placeholders(es[key]))} in Spanish but "
            f"{sorted(placeholders(en[key]))} in English"
        )


@pytest.mark.parametrize("name", sorted(CATALOGUES))
def test_catalogue_files_are_sorted_json_objects_of_strings(name: str) -> None:
    catalogue = CATALOGUES[name]
    for lang in LANGUAGES:
        data = json.loads(catalogue.path(lang).read_text(encoding="utf-8"))
        assert all(isinstance(v, str) for v in data.values())
        assert list(data) == sorted(data), f"{catalogue.path(lang)}: keep the keys sorted"


def test_a_service_does_not_repeat_a_common_sentence() -> None:
    for catalogue in (GATEWAY, EVOLUTION, OPTIMIZER, REWARD):
        assert not _own_keys(catalogue) & _own_keys(COMMON), catalogue.name


def test_gateway_sentences_do_not_shadow_page_texts() -> None:
    """The page translator merges every ``web/locales/*.<lang>.json``; the error
    sentences must not replace a page text of the same key."""
    locales = ROOT / "web" / "locales"
    for lang in LANGUAGES:
        others: set[str] = set()
        for path in locales.glob(f"*{lang}.json"):
            if path != GATEWAY.path(lang):
                others |= set(json.loads(path.read_text(encoding="utf-8")))
        assert not others & set(GATEWAY.own(lang)), lang


def test_every_key_the_code_names_exists_with_its_parameters(
    scanned: tuple[list[Use], list[str], set[str]],
) -> None:
    uses, problems, _ = scanned
    assert len(uses) > 100, "the scan found too few uses: is it still reading the code?"
    for use in uses:
        if use.key not in use.catalogue:
            problems.append(
                f"{use.where}: {use.key!r} is not in the {use.catalogue.name} catalogue"
            )
            continue
        wanted = placeholders(use.catalogue.template(use.key, "es"))
        given = use.params
        if given is None:
            continue
        if use.exact and given != wanted:
            problems.append(f"{use.where}: {use.key} takes {sorted(wanted)}, given {sorted(given)}")
        elif not use.exact and not given >= wanted:
            problems.append(f"{use.where}: {use.key} needs {sorted(wanted)}, given {sorted(given)}")
    assert not problems, "\n".join(problems)


def _used_keys(uses: list[Use], literals: set[str]) -> Iterator[tuple[Catalogue, str]]:
    for use in uses:
        yield use.catalogue, use.key
    for catalogue in CATALOGUES.values():
        for key in _own_keys(catalogue):
            if key in literals:  # named whole (a key passed on, a sentence's key)
                yield catalogue, key
            for prefix in (PREFIX, STEP_PREFIX):
                # A provider step or reason travels as its bare code ("create_prediction").
                if (
                    catalogue is GATEWAY
                    and key.startswith(prefix)
                    and (key.removeprefix(prefix) in literals)
                ):
                    yield catalogue, key


def test_no_key_goes_unused(scanned: tuple[list[Use], list[str], set[str]]) -> None:
    uses, _, literals = scanned
    used: dict[str, set[str]] = {name: set() for name in CATALOGUES}
    for catalogue, key in _used_keys(uses, literals):
        # A key found through a service's catalogue may live in the common one.
        owner = catalogue if key in _own_keys(catalogue) else COMMON
        used[owner.name].add(key)
    unused = {name: sorted(_own_keys(c) - used[name]) for name, c in CATALOGUES.items()}
    assert not any(unused.values()), unused


def test_an_error_built_from_the_catalogue_says_both_languages() -> None:
    from services.gateway.errors import RatingRejected

    error = RatingRejected.because("already_rated", option="A")
    assert error.key == "rating_rejected.already_rated" and error.params == {"option": "A"}
    assert error.say("es") == "La opción A ya fue puntuada; no se guardó nada nuevo."
    assert error.say("en") == "Option A was already rated; nothing new was saved."
    assert error.to_dict()["key"] == error.key and error.to_dict()["code"] == "rating_rejected"
    with pytest.raises(KeyError):
        RatingRejected.because("no_such_reason")
