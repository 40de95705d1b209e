"""Type stubs of the native extension (python/src/lib.rs). Use the wrappers in `lossref`."""

from typing import Optional, Tuple

class CaseError(ValueError):
    """A case lossref cannot answer; the message is the command line's."""

class ResultsError(ValueError):
    """Results, expectations or a corpus that lossref check cannot read."""

def eval_case(text: str, base: str) -> str:
    """The certified answer of a SPEC §3 case (JSON text), as JSON text with `binary64`
    and `binary32` sections."""

def corpus_manifest(path: Optional[str] = None) -> str:
    """The manifest of the corpus in `path`, or of the embedded corpus."""

def corpus_file(name: str, path: Optional[str] = None) -> bytes:
    """The bytes of one corpus file (`cases/<id>.npz`)."""

def check_results(
    results: str, corpus: Optional[str] = None, expect: Optional[str] = None, diagnose: bool = True
) -> Tuple[bool, str, str, str, str]:
    """(passed, report JSON, text, HTML, JUnit XML) of results judged against a corpus."""

def versions() -> Tuple[str, str]:
    """(library version, embedded corpus version)."""
