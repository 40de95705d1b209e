"""lossref: ground truth for softmax-family classification losses, from Python.

* :func:`eval` — the certified answer of any case (SPEC §3): every output and gradient as a
  36-digit decimal string true to its last digit, with its binary64 and binary32 roundings
  as numpy arrays. Exactly what ``lossref eval`` prints.
* :class:`Corpus`, :class:`Results`, :func:`check` — the versioned conformance corpus
  (SPEC §4), the values of an implementation under test, and the judge: per-case verdicts,
  a summary table, diagnoses ("matches if margins are degrees"), JUnit XML, and in Jupyter
  the same page as ``lossref check --html``.
* :mod:`lossref.strategies` — hypothesis strategies for valid cases, edge regimes included.
* a pytest plugin (``lossref.pytest_plugin``, registered on install) that runs a test once
  per corpus case.

The numbers in a case are the exact binary64 values of its Python floats (float32 arrays
widen exactly), and every answer is the exact mathematics of those values.
"""

from __future__ import annotations

import io
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _lossref
from ._lossref import CaseError, ResultsError

__all__ = [
    "Answer",
    "CaseError",
    "Corpus",
    "CorpusCase",
    "Report",
    "Results",
    "ResultsError",
    "check",
    "eval",
    "CORPUS_VERSION",
    "FAMILIES",
    "LOSSES",
    "DTYPES",
    "PIPELINES",
    "switch_points",
]

__version__, CORPUS_VERSION = _lossref.versions()

#: The catalogue of SPEC §1 as the Rust library defines it: each family's name with its loss
#: ids, in catalogue order.
FAMILIES: Dict[str, tuple] = {name: tuple(losses) for name, losses in _lossref.catalogue()}
#: Every loss id, in catalogue order.
LOSSES: tuple = tuple(loss for losses in FAMILIES.values() for loss in losses)


def _did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` with the valid name nearest to `name`, or nothing."""
    import difflib

    near = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _plain(x: Any) -> Any:
    """Python values JSON can hold exactly: arrays as nested lists, numpy scalars as floats
    (float16 and ml_dtypes' bfloat16 widened exactly to float64 first)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf" or x.dtype == np.float16:
            # float16, bfloat16 (ml_dtypes) and other 16-bit floats: exact in float64
            x = x.astype(np.float64)
        return x.tolist()
    if isinstance(x, np.generic) and not isinstance(x, (np.bool_, np.integer, np.floating)):
        return float(x)
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def _json_number(x: float) -> Any:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _case_text(case: Union[Mapping[str, Any], str, os.PathLike]) -> "tuple[str, str]":
    """The JSON text of a case and the directory its `.npz` inputs are relative to."""
    if isinstance(case, Mapping):
        try:
            return json.dumps(_plain(case), allow_nan=True), "."
        except (TypeError, ValueError) as e:
            raise CaseError(f"case: cannot be written as JSON: {e}") from None
    path = Path(case)
    try:
        text = path.read_text()
    except OSError as e:
        raise CaseError(f"{path}: cannot read: {e}") from None
    return text, str(path.parent)


class Answer:
    """The certified answer of one case (SPEC §3).

    ``outputs`` and ``gradients`` map names to decimal strings (a scalar) or nested lists
    of them (a matrix), exactly as ``lossref eval`` prints them. ``binary64`` and
    ``binary32`` hold the roundings as numpy arrays, each decided from the enclosure (the
    binary32 is never the binary64 rounded again). ``tier`` is the weakest claim over the
    values (``correctly_rounded``, ``faithful``, or ``bounded``: some value of magnitude at
    most 2^−1075 is known only by its enclosure ``"[lo, hi]"``, its roundings ±0).
    """

    def __init__(self, raw: Dict[str, Any]):
        self.loss: str = raw["loss"]
        self.outputs: Dict[str, Any] = raw["outputs"]
        self.gradients: Dict[str, Any] = raw["gradients"]
        self.tier: str = raw["certificate"]["tier"]
        self.precision_bits: int = raw["certificate"]["precision_bits"]
        self.binary64: Dict[str, Dict[str, np.ndarray]] = {
            s: {k: np.asarray(v, dtype=np.float64) for k, v in raw["binary64"][s].items()}
            for s in ("outputs", "gradients")
        }
        self.binary32: Dict[str, Dict[str, np.ndarray]] = {
            s: {k: np.asarray(v, dtype=np.float32) for k, v in raw["binary32"][s].items()}
            for s in ("outputs", "gradients")
        }

    def decimal(self, name: str) -> Any:
        """The value `name` (an output, else a gradient) as a :class:`decimal.Decimal`, or
        a numpy object array of them."""
        v = self.outputs[name] if name in self.outputs else self.gradients[name]

        def number(x: str) -> Decimal:
            if x.startswith("["):
                raise ValueError(
                    f"{name}: {x} is a bounded value (tier `bounded`): only its enclosure "
                    "and its binary64/binary32 roundings are known, not its digits"
                )
            return Decimal(x)

        if isinstance(v, str):
            return number(v)
        return np.array([[number(x) for x in row] for row in v], dtype=object)

    def json(self) -> Dict[str, Any]:
        """The object ``lossref eval`` prints (same keys, same strings)."""
        return {
            "loss": self.loss,
            "outputs": self.outputs,
            "gradients": self.gradients,
            "certificate": {"tier": self.tier, "precision_bits": self.precision_bits},
        }

    def __repr__(self) -> str:
        return f"<lossref.Answer {self.loss} tier={self.tier} outputs={self.outputs!r}>"


def switch_points(loss: str, params: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """The points of `loss`'s rule where implementations go wrong (SPEC §1), with `params`
    (SPEC §1's defaults for what it omits), as the Rust family states them: each a dict with
    ``tag`` (the corpus regime, ``edge:thmm-switch``, ``edge:easy-switch``,
    ``edge:psi-boundary``, ``edge:acos-near-1``, ``edge:acos-near-minus-1``), ``theta``,
    ``cos`` and ``undefined`` (whether the requested gradient does not exist exactly there).

    >>> [p["tag"] for p in switch_points("arcface", {"boundary": "thmm"})]
    ['edge:acos-near-1', 'edge:acos-near-minus-1', 'edge:thmm-switch']
    """
    points = _lossref.switch_points(loss, json.dumps(_plain(dict(params or {}))))
    return [{"tag": t, "theta": theta, "cos": c, "undefined": u} for t, theta, c, u in points]


def eval(case: Union[Mapping[str, Any], str, os.PathLike]) -> Answer:  # noqa: A001
    """The certified answer of `case`: a SPEC §3 dict (inputs may be numpy arrays), or the
    path of a case file. Raises :class:`CaseError` with the command line's message for a
    malformed case, an undefined point, or a value that cannot be certified."""
    text, base = _case_text(case)
    return Answer(json.loads(_lossref.eval_case(text, base)))


#: The dtypes of corpus cases (SPEC §4, §6).
DTYPES = ("float32", "float64", "bfloat16", "float16")

#: The names a results file's ``pipeline`` is made of (SPEC §6): ``native``, ``amp`` or
#: ``accumulate16`` (no tier: fails by design) for the 16-bit cases, ``highest``, ``tf32``,
#: ``bf16x3`` or ``bf16`` for the float32 cases' matrix products, and ``ftz``.
PIPELINES = ("native", "amp", "accumulate16", "highest", "tf32", "bf16x3", "bf16", "ftz")


def _in_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    """A float array of a 16-bit case (stored as float32, exactly) in the case's dtype:
    ``numpy.float16``, or ``ml_dtypes.bfloat16`` where ml_dtypes is installed (JAX brings
    it; without it a bfloat16 case's inputs stay float32, which holds them exactly)."""
    if a.dtype.kind != "f" or dtype not in ("bfloat16", "float16"):
        return a
    if dtype == "float16":
        return a.astype(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        return a
    return a.astype(ml_dtypes.bfloat16)


class CorpusCase:
    """One corpus case: its id, loss, dtype, params, tags and generator, its inputs as numpy
    arrays in the case's dtype (float32 in a float32 case, numpy.float16 in a float16 one,
    ml_dtypes.bfloat16 in a bfloat16 one where ml_dtypes is installed), and the reference's
    roundings."""

    def __init__(self, corpus: "Corpus", entry: Dict[str, Any]):
        self._corpus = corpus
        self.entry = entry
        self.id: str = entry["id"]
        self.loss: str = entry["loss"]
        self.dtype: str = entry["dtype"]
        self.params: Dict[str, Any] = entry["params"]
        self.tags: List[str] = entry["tags"]
        self._arrays: Optional[Dict[str, np.ndarray]] = None

    @property
    def arrays(self) -> Dict[str, np.ndarray]:
        """Every array of the case's `.npz` (inputs, reference, tolerance data)."""
        if self._arrays is None:
            data = _lossref.corpus_file(self.entry["arrays"], self._corpus.path)
            with np.load(io.BytesIO(data)) as z:
                self._arrays = {k: z[k] for k in z.files}
        return self._arrays

    @property
    def inputs(self) -> Dict[str, np.ndarray]:
        """The inputs by name (`logits`, `features`, `weights`, `labels`, …), in the case's
        dtype (see the class)."""
        return {
            k[len("inputs/"):]: _in_dtype(v, self.dtype) for k, v in self.arrays.items() if k.startswith("inputs/")
        }

    def reference(self, dtype: Optional[str] = None) -> Dict[str, Dict[str, np.ndarray]]:
        """The reference's roundings in `dtype` (default: the case's own; a 16-bit case also
        holds its format's, as float32 arrays, exactly): ``{"outputs": {...}, "gradients": {...}}``."""
        dtype = dtype or self.dtype
        if dtype not in DTYPES:
            raise ValueError(f"CorpusCase.reference: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if dtype in ("bfloat16", "float16") and dtype != self.dtype:
            raise ValueError(f"CorpusCase.reference: {self.id} holds no {dtype} rounding (only {dtype} cases do)")
        prefix = {"float32": "reference/binary32/", "float64": "reference/"}.get(dtype, f"reference/{dtype}/")
        out: Dict[str, Dict[str, np.ndarray]] = {"outputs": {}, "gradients": {}}
        for section in out:
            p = prefix + section + "/"
            for k, v in self.arrays.items():
                if k.startswith(p):
                    out[section][k[len(p):]] = v
        return out

    @property
    def case(self) -> Dict[str, Any]:
        """The SPEC §3 case (inputs as numpy arrays), ready for :func:`eval`."""
        return {"loss": self.loss, "params": dict(self.params), "inputs": self.inputs}

    def __repr__(self) -> str:
        return f"<lossref.CorpusCase {self.id}>"


class Corpus:
    """The conformance corpus (SPEC §4)."""

    def __init__(self, manifest: Dict[str, Any], path: Optional[str]):
        self.manifest = manifest
        self.path = path
        self.version: str = manifest["version"]
        self._cases = [CorpusCase(self, e) for e in manifest["cases"]]
        self._by_id = {c.id: c for c in self._cases}

    @classmethod
    def load(cls, path: Union[str, os.PathLike, None] = None) -> "Corpus":
        """The corpus in directory `path`, or (None) the one embedded in the package."""
        p = None if path is None else os.fspath(path)
        return cls(json.loads(_lossref.corpus_manifest(p)), p)

    def cases(
        self,
        loss: Union[str, Sequence[str], None] = None,
        dtype: Union[str, Sequence[str], None] = None,
        tag: Optional[str] = None,
        ids: Optional[Iterable[str]] = None,
        options: Optional[bool] = None,
    ) -> List[CorpusCase]:
        """The cases of a loss (or losses), a dtype or dtypes (`float32`, `float64`,
        `bfloat16`, `float16`; ``dtype=["float32", "float64"]`` leaves out SPEC §6's 16-bit
        cases, whose inputs are ml_dtypes.bfloat16 and numpy.float16 arrays), a tag
        (`edge:acos-near-1`, …; the regime's name without `edge:` is accepted too) and/or
        among `ids`, in corpus order. ``options=False`` keeps only the cases that use none
        of SPEC §5's options of `softmax_ce` (class weights, ignore_index, label smoothing,
        soft targets; tagged ``option:…``), ``options=True`` only those that do. A loss,
        dtype, tag or id that the corpus does not have raises ValueError with the nearest
        valid name: a typo never selects nothing."""
        losses = {loss} if isinstance(loss, str) else (set(loss) if loss else None)
        for name in sorted(losses or ()):
            if name not in LOSSES:
                raise ValueError(f"lossref.Corpus.cases: unknown loss {name!r}{_did_you_mean(name, LOSSES)}")
        dtypes = {dtype} if isinstance(dtype, str) else (set(dtype) if dtype is not None else None)
        for d in sorted(dtypes or (), key=str):
            if d not in DTYPES:
                raise ValueError(
                    f"lossref.Corpus.cases: dtype must be one of {', '.join(DTYPES)}, got {d!r}{_did_you_mean(str(d), DTYPES)}"
                )
        if tag is not None:
            tags = {t for c in self._cases for t in c.tags}
            if tag not in tags and "edge:" + str(tag) in tags:
                tag = "edge:" + str(tag)
            if tag not in tags:
                raise ValueError(
                    f"lossref.Corpus.cases: no case of corpus {self.version} has the tag {tag!r}"
                    f"{_did_you_mean(tag, tags)}; its tags are {', '.join(sorted(tags))}"
                )
        wanted = set(ids) if ids is not None else None
        unknown = sorted((wanted or set()) - set(self._by_id))
        if unknown:
            raise ValueError(
                f"lossref.Corpus.cases: {len(unknown)} ids are not cases of corpus {self.version}: "
                + ", ".join(f"{i!r}{_did_you_mean(i, self._by_id)}" for i in unknown[:5])
                + (", …" if len(unknown) > 5 else "")
            )
        return [
            c
            for c in self._cases
            if (losses is None or c.loss in losses)
            and (dtypes is None or c.dtype in dtypes)
            and (tag is None or tag in c.tags)
            and (wanted is None or c.id in wanted)
            and (options is None or options == any(t.startswith("option:") for t in c.tags))
        ]

    def __getitem__(self, case_id: str) -> CorpusCase:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise KeyError(f"{case_id!r} is not a case of corpus {self.version}{_did_you_mean(case_id, self._by_id)}") from None

    def __iter__(self) -> Iterator[CorpusCase]:
        return iter(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __repr__(self) -> str:
        return f"<lossref.Corpus {self.version}: {len(self)} cases>"


class Results:
    """The values an implementation under test computed for corpus cases (SPEC §4).

    ``computes=["outputs/loss", "gradients/features"]`` declares what the implementation
    computes: the other value groups are "not run", never MISSING (a NormFace with a fixed
    scale has no ``gradients/scale``).

    ``Results(corpus)`` (SPEC §4) binds the results to a :class:`Corpus`: ids it does not
    hold are refused by :meth:`add` at once, and :func:`check` judges against it.
    ``Results("my cosface")`` names the implementation instead (the embedded corpus, or the
    one :func:`check` is given); both take ``implementation=`` as a keyword.

    ``pipeline="amp"`` (or ``"native"``, ``"tf32"``, ``"amp+tf32"``, a list of names)
    declares how the implementation computed (SPEC §6): each case is judged in that tier's
    tolerance, and a failure says which tier its values do meet.

    ``results.add(case, outputs={"loss": 1.25}, gradients={"features": array})``; arrays of
    any float dtype (numpy.float16 and ml_dtypes.bfloat16 included) are read exactly; NaN
    and infinities are kept (and fail)."""

    def __init__(
        self,
        corpus: Union["Corpus", str, None] = None,
        implementation: Optional[str] = None,
        computes: Optional[Sequence[str]] = None,
        pipeline: Union[str, Sequence[str], None] = None,
    ):
        if isinstance(corpus, Corpus):
            self.corpus: Optional[Corpus] = corpus
            name = implementation
        elif corpus is None or isinstance(corpus, str):
            if corpus is not None and implementation is not None:
                raise TypeError("lossref.Results: give the implementation's name once, as the first argument or as implementation=")
            self.corpus = None
            name = corpus if corpus is not None else implementation
        else:
            raise TypeError(
                f"lossref.Results: expected a lossref.Corpus or the implementation's name (a str), got {type(corpus).__name__}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"lossref.Results: implementation must be a str, got {type(name).__name__}")
        self.implementation: str = name if name is not None else "unnamed"
        if computes is not None:
            if isinstance(computes, str) or not all(
                isinstance(g, str) and g.startswith(("outputs/", "gradients/")) for g in computes
            ):
                raise ValueError(
                    f"lossref.Results: computes must list value groups such as 'outputs/loss' or 'gradients/features', got {computes!r}"
                )
            computes = list(computes)
        #: The value groups this implementation computes (SPEC §4), or None: a group it
        #: does not compute is "not run", never MISSING.
        self.computes: Optional[List[str]] = computes
        if pipeline is not None:
            names = pipeline.split("+") if isinstance(pipeline, str) else list(pipeline)
            for n in names:
                if n not in PIPELINES:
                    raise ValueError(
                        f"lossref.Results: unknown tier {n!r}{_did_you_mean(str(n), PIPELINES)}; the tiers are {', '.join(PIPELINES)} (SPEC §6)"
                    )
            pipeline = "+".join(names)
        #: The declared pipeline (SPEC §6), or None (``native`` for the 16-bit cases,
        #: float32 products, subnormals kept).
        self.pipeline: Optional[str] = pipeline
        self.values: Dict[str, Dict[str, Dict[str, Any]]] = {}

    def add(
        self,
        case: Union[CorpusCase, str],
        outputs: Optional[Mapping[str, Any]] = None,
        gradients: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Records the values of one case (by :class:`CorpusCase` or id)."""
        if isinstance(case, CorpusCase):
            case_id = case.id
        elif isinstance(case, str):
            case_id = case
        else:
            raise TypeError(f"Results.add: expected a CorpusCase or a case id (a str), got {type(case).__name__}")
        if self.corpus is not None and case_id not in self.corpus._by_id:
            raise ResultsError(f"{case_id}: not a case of corpus {self.corpus.version}")
        for name, values in (("outputs", outputs), ("gradients", gradients)):
            if values is not None and not isinstance(values, Mapping):
                raise TypeError(f"Results.add: {name} must map value names to arrays, got {type(values).__name__}")
        self.values[case_id] = {
            "outputs": {k: self._tensor(v) for k, v in (outputs or {}).items()},
            "gradients": {k: self._tensor(v) for k, v in (gradients or {}).items()},
        }

    @staticmethod
    def _tensor(v: Any) -> Any:
        a = np.asarray(v)
        # float16 and ml_dtypes' bfloat16 widen exactly; so does everything else numeric
        a = a.astype(np.float64) if a.dtype != np.float64 else a
        if a.ndim == 0:
            return _json_number(float(a))
        return np.vectorize(_json_number, otypes=[object])(a).tolist()

    def to_json(self) -> str:
        """The SPEC §4 JSON results file."""
        out: Dict[str, Any] = {"implementation": self.implementation, "results": self.values}
        if self.computes is not None:
            out["computes"] = self.computes
        if self.pipeline is not None:
            out["pipeline"] = self.pipeline
        return json.dumps(out)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the JSON results file (for ``lossref check --results``)."""
        Path(path).write_text(self.to_json())

    def __len__(self) -> int:
        return len(self.values)


#: The case verdicts that fail a check, as ``lossref check`` counts them (its exit status 1,
#: ``Report.passed``): an UNSTABLE case fails unless an expectation marks it.
FAILING = ("FAIL", "UNSTABLE", "MISSING", "WRONG SHAPE", "UNEXPECTED PASS")


class Report:
    """The judgement of a :class:`Results` against the corpus.

    ``passed``; ``cases`` (per case: id, verdict and per value group verdict, error in
    tolerance units and in ulps, where); ``table`` (per loss output and dtype);
    ``diagnoses`` (per failing loss: the convention that explains its failures);
    ``str(report)`` is ``lossref check``'s text, and in Jupyter the report shows as the
    page of ``lossref check --html``."""

    def __init__(self, passed: bool, raw: str, text: str, html: str, junit: str):
        self.passed: bool = passed
        self.json: Dict[str, Any] = json.loads(raw)
        self.text = text
        self._html = html
        self._junit = junit
        self.cases: List[Dict[str, Any]] = self.json["cases"]
        self.table: List[Dict[str, Any]] = self.json["table"]
        self.diagnoses: List[Dict[str, Any]] = self.json["diagnoses"]
        self.counts: Dict[str, int] = self.json["counts"]

    def verdict(self, case_id: str) -> str:
        """The verdict of one case: ``pass``, ``FAIL``, ``UNSTABLE``, ``MISSING``,
        ``WRONG SHAPE``, ``not run``, ``xfail``, ``skip`` or ``UNEXPECTED PASS``."""
        for c in self.cases:
            if c["id"] == case_id:
                return c["verdict"]
        raise KeyError(case_id)

    def case(self, case_id: str) -> Dict[str, Any]:
        """The full verdict of one case."""
        for c in self.cases:
            if c["id"] == case_id:
                return c
        raise KeyError(case_id)

    def diagnosis(self, loss: str) -> Optional[str]:
        """The diagnosis line of a failing loss, if any."""
        for d in self.diagnoses:
            if d["loss"] == loss:
                return d["text"]
        return None

    def failures(self) -> List[Dict[str, Any]]:
        """The cases that fail: those that make ``lossref check`` exit 1 and ``passed``
        false (``FAIL``, ``UNSTABLE``, ``MISSING``, ``WRONG SHAPE``, ``UNEXPECTED PASS``)."""
        return [c for c in self.cases if c["verdict"] in FAILING]

    def to_junit(self, path: Union[str, os.PathLike]) -> None:
        """Writes JUnit XML (one test case per corpus case)."""
        Path(path).write_text(self._junit)

    def to_html(self, path: Union[str, os.PathLike]) -> None:
        """Writes the self-contained HTML page of ``lossref check --html``."""
        Path(path).write_text(self._html)

    def _repr_html_(self) -> str:
        return self._html

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<lossref.Report passed={self.passed} {self.counts}>"


def check(
    results: Union[Results, Mapping[str, Any], str, os.PathLike],
    expect: Union[Mapping[str, Any], str, os.PathLike, None] = None,
    corpus: Union[Corpus, str, os.PathLike, None] = None,
    diagnose: bool = True,
) -> Report:
    """Judges `results` (a :class:`Results`, a results dict, or a JSON results file) against
    the corpus (default: the embedded one), with an optional expectation file or dict
    (``{"expectations": [{"case": GLOB, "category": "xfail"|"skip", "reason": TEXT}]}``).
    Raises :class:`ResultsError` for unreadable results or ids the corpus does not hold. A
    :class:`Results` bound to a corpus is judged against it unless `corpus` says otherwise."""
    if isinstance(results, Results):
        text = results.to_json()
        if corpus is None:
            corpus = results.corpus
    elif isinstance(results, Mapping):
        text = json.dumps(_plain(results))
    else:
        text = Path(results).read_text()
    if expect is None:
        expect_text = None
    elif isinstance(expect, Mapping):
        expect_text = json.dumps(expect)
    else:
        expect_text = Path(expect).read_text()
    corpus_path = corpus.path if isinstance(corpus, Corpus) else (None if corpus is None else os.fspath(corpus))
    return Report(*_lossref.check_results(text, corpus_path, expect_text, diagnose))


def assert_conforms(
    case: Union[CorpusCase, str],
    outputs: Optional[Mapping[str, Any]] = None,
    gradients: Optional[Mapping[str, Any]] = None,
    implementation: str = "under test",
    expect: Union[Mapping[str, Any], str, os.PathLike, None] = None,
    corpus: Union[Corpus, str, os.PathLike, None] = None,
    pipeline: Union[str, Sequence[str], None] = None,
) -> Report:
    """Checks one corpus case's values (computed in `pipeline`, SPEC §6) and raises
    ``AssertionError`` with the verdict of each value group and the diagnosis when the case
    fails (for pytest). Returns the report."""
    results = Results(implementation, pipeline=pipeline)
    results.add(case, outputs=outputs, gradients=gradients)
    report = check(results, expect=expect, corpus=corpus if corpus is not None else getattr(case, "_corpus", None))
    case_id = case.id if isinstance(case, CorpusCase) else str(case)
    verdict = report.case(case_id)
    # one verdict everywhere: what fails `lossref check` fails here (UNSTABLE included,
    # unless an expectation says otherwise)
    if verdict["verdict"] in FAILING:
        lines = [f"{case_id}: {verdict['verdict']}"]
        for g in verdict["groups"]:
            if g["verdict"] != "pass":
                where = f" at {g['at']}" if g.get("at") else ""
                note = f"; {g['tier_note']}" if g.get("tier_note") else ""
                lines.append(f"  {g['group']}: {g['verdict']} {g.get('detail', '')}{where}{note}".rstrip())
        loss = case.loss if isinstance(case, CorpusCase) else case_id.split("/")[0]
        for d in report.diagnoses:
            if loss.startswith(d["loss"]) or d["loss"] in loss:
                lines.append(f"  diagnosis: {d['text']}")
        raise AssertionError("\n".join(lines))
    return report


__all__.append("assert_conforms")
