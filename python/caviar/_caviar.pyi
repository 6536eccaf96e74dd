"""Type stubs of caviar's Rust module (``caviar._caviar``)."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

SAMPLERS: List[str]
PRUNERS: List[str]

class TrialPruned(Exception):
    """Raised by an objective to stop its trial as pruned."""

class DuplicatedStudyError(Exception):
    """A study of that name exists already."""

class Trial:
    """A running trial: suggest parameters, report intermediate values, ask to prune."""

    @property
    def number(self) -> int: ...
    @property
    def params(self) -> Dict[str, Any]: ...
    def suggest_float(
        self,
        name: str,
        low: float,
        high: float,
        *,
        step: Optional[float] = None,
        log: bool = False,
        scale: Optional[str] = None,
    ) -> float: ...
    def suggest_int(
        self, name: str, low: int, high: int, step: int = 1, log: bool = False
    ) -> int: ...
    def suggest_categorical(
        self, name: str, choices: Sequence[Union[bool, int, float, str]]
    ) -> Any: ...
    def set_user_attr(self, key: str, value: Any) -> None: ...
    @property
    def user_attrs(self) -> Dict[str, Any]: ...
    def report(self, value: float, step: int) -> None: ...
    def should_prune(self) -> bool: ...

class Study:
    """A stored study as the engine holds it; ``caviar.Study`` wraps it."""

    @property
    def study_name(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def storage_url(self) -> str: ...
    def optimize(
        self,
        func: Callable[[Trial], float],
        n_trials: Optional[int] = None,
        timeout: Optional[float] = None,
        n_jobs: int = 1,
        catch: Optional[Tuple[type, ...]] = None,
        on_trial: Optional[Callable[[Dict[str, Any]], None]] = None,
        retries: int = 0,
    ) -> None: ...
    def ask(self) -> Trial: ...
    def tell(
        self, trial: Union[Trial, int], value: Optional[float] = None, state: Optional[str] = None
    ) -> str: ...
    def enqueue(
        self, params: Dict[str, Any], user_attrs: Optional[Dict[str, Any]] = None
    ) -> int: ...
    def set_user_attr(self, key: str, value: Any) -> None: ...
    @property
    def user_attrs(self) -> Dict[str, Any]: ...
    def trials(self) -> List[Dict[str, Any]]: ...
    def best_trial(self) -> Optional[Dict[str, Any]]: ...
    def trial(self, number: int) -> Dict[str, Any]: ...

def open_study(
    study_name: str,
    storage: Optional[str] = None,
    direction: str = "minimize",
    sampler: Optional[Dict[str, Any]] = None,
    pruner: Optional[Dict[str, Any]] = None,
    load_if_exists: bool = False,
    create: bool = True,
    grid: Optional[Dict[str, List[Any]]] = None,
) -> Study: ...
def study_summaries(storage: str) -> List[Dict[str, Any]]: ...
def delete_study(study_name: str, storage: str) -> None: ...
def cli_main(argv: List[str]) -> int: ...
