"""caviar: hyperparameter tuning on a Rust engine, with Optuna's vocabulary.

Usage::

    import caviar

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        beta1 = trial.suggest_float("beta1", 0.9, 0.999, scale="reverse_log")
        for epoch in range(10):
            loss = train_one_epoch(lr, beta1)
            trial.report(loss, epoch)
            if trial.should_prune():
                raise caviar.TrialPruned()
        return loss

    study = caviar.create_study(storage="sqlite:study.db", study_name="mnist",
                                sampler=caviar.samplers.TPESampler(seed=0),
                                pruner=caviar.pruners.MedianPruner())
    study.optimize(objective, n_trials=100, n_jobs=2)
    print(study.best_params)

Samplers, pruners, storages and the run loop (worker threads, heartbeats, recovery of trials
lost with their process) are caviar's Rust engine; a study made here is an ordinary stored
study that ``caviar studies``, ``caviar best`` and ``caviar dashboard`` read. Differences from
Optuna are listed in ``docs/python.md``.
"""

from __future__ import annotations

import datetime as _dt
import enum as _enum
import os as _os
import sys as _sys
import uuid as _uuid
from typing import Any, Callable, Container, Dict, Iterable, List, Optional, Sequence

from . import _caviar, importance, pruners, samplers
from ._caviar import DuplicatedStudyError, Trial, TrialPruned

__all__ = [
    "DuplicatedStudyError",
    "FrozenTrial",
    "Study",
    "StudyDirection",
    "StudySummary",
    "Trial",
    "TrialPruned",
    "TrialState",
    "create_study",
    "delete_study",
    "get_all_study_names",
    "get_all_study_summaries",
    "importance",
    "load_study",
    "pruners",
    "samplers",
]


class TrialState(_enum.IntEnum):
    """A trial's state, numbered as Optuna numbers them."""

    RUNNING = 0
    COMPLETE = 1
    PRUNED = 2
    FAIL = 3
    WAITING = 4

    def is_finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


_STATES = {
    "running": TrialState.RUNNING,
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "waiting": TrialState.WAITING,
}
_TELL_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "fail",
}


class StudyDirection(_enum.IntEnum):
    """Whether the objective is minimized or maximized, numbered as Optuna numbers them."""

    NOT_SET = 0
    MINIMIZE = 1
    MAXIMIZE = 2


def _datetime(ms: Optional[int]) -> Optional[_dt.datetime]:
    if ms is None:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000.0)


def _constraint_values(constraints_func: Callable[[Any], Sequence[float]], trial: Any) -> List[float]:
    """What a sampler's ``constraints_func`` says of ``trial``, as floats."""
    values = constraints_func(trial)
    try:
        return [float(c) for c in values]
    except (TypeError, ValueError):
        raise ValueError(
            f"constraints_func returned {values!r}; return a sequence of numbers, "
            "each at most 0 where its constraint holds"
        ) from None


class FrozenTrial:
    """A trial as stored: its state, value, parameters and learning curve.

    ``distributions`` holds caviar's distribution records (dicts such as
    ``{"type": "float", "low": 1e-5, "high": 0.1, "scale": "log"}``), not Optuna's classes.
    ``error`` is caviar's: why a failed trial failed (a traceback for a Python exception).
    """

    __slots__ = (
        "number",
        "state",
        "value",
        "params",
        "distributions",
        "intermediate_values",
        "datetime_start",
        "datetime_complete",
        "error",
        "worker",
        "user_attrs",
        "system_attrs",
        "param_history",
        "_values",
    )

    def __init__(self, record: Dict[str, Any]) -> None:
        self.number: int = record["number"]
        self.state: TrialState = _STATES[record["state"]]
        self.value: Optional[float] = (
            record["value"] if self.state == TrialState.COMPLETE else None
        )
        self.params: Dict[str, Any] = record["params"]
        self.distributions: Dict[str, Dict[str, Any]] = record["distributions"]
        self.intermediate_values: Dict[int, float] = record["intermediate_values"]
        self.datetime_start = _datetime(record["started_ms"])
        self.datetime_complete = _datetime(record["finished_ms"])
        self.error: Optional[str] = record["error"]
        self.worker: Optional[str] = record["worker"]
        self.user_attrs: Dict[str, Any] = record["user_attrs"]
        # caviar's: changes asked while it ran (panda mode), oldest first, each a dict with
        # name, old, new, who, note, forced, asked_ms, applied_step, applied_ms.
        self.param_history: List[Dict[str, Any]] = record["param_history"]
        # As Optuna keeps them: the constraint values (at most zero where one holds).
        self.system_attrs: Dict[str, Any] = {}
        # Every objective's value, for a complete trial of a study with several.
        self._values: List[float] = list(record.get("values") or [])
        constraints = record.get("constraints") or []
        if constraints:
            self.system_attrs["constraints"] = list(constraints)

    @property
    def feasible(self) -> bool:
        """caviar's: whether every constraint of the study holds (True when it has none)."""
        return all(c <= 0.0 for c in self.system_attrs.get("constraints", ()))

    @property
    def values(self) -> Optional[List[float]]:
        if self.value is None:
            return None
        return list(self._values) if self._values else [self.value]

    @property
    def duration(self) -> Optional[_dt.timedelta]:
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return self.datetime_complete - self.datetime_start

    @property
    def last_step(self) -> Optional[int]:
        return max(self.intermediate_values) if self.intermediate_values else None

    def __repr__(self) -> str:
        return (
            f"FrozenTrial(number={self.number}, state={self.state.name}, "
            f"value={self.value}, params={self.params})"
        )


class StudySummary:
    """One study of a storage, as ``get_all_study_summaries`` lists it."""

    def __init__(self, record: Dict[str, Any]) -> None:
        self.study_name: str = record["study_name"]
        self.direction = _direction(record["direction"])
        self.n_trials: int = record["n_trials"]
        self.best_value: Optional[float] = record["best_value"]
        self.datetime_start = _datetime(record["created_ms"])

    def __repr__(self) -> str:
        return f"StudySummary(study_name={self.study_name!r}, n_trials={self.n_trials})"


def _direction(text: str) -> StudyDirection:
    return StudyDirection.MAXIMIZE if text == "maximize" else StudyDirection.MINIMIZE


def _direction_text(direction: Any) -> str:
    if isinstance(direction, StudyDirection):
        if direction == StudyDirection.NOT_SET:
            raise ValueError("direction: NOT_SET cannot be optimized; use MINIMIZE or MAXIMIZE")
        return direction.name.lower()
    if isinstance(direction, str):
        return direction.lower()
    raise TypeError(f"direction must be 'minimize' or 'maximize', not {direction!r}")


class Study:
    """A study: optimize an objective, or ask and tell trials yourself."""

    def __init__(
        self,
        inner: "_caviar.Study",
        constraints_func: Optional[Callable[[Any], Sequence[float]]] = None,
    ) -> None:
        self._inner = inner
        self._constraints_func = constraints_func

    @property
    def study_name(self) -> str:
        return self._inner.study_name

    @property
    def direction(self) -> StudyDirection:
        return _direction(self._inner.direction)

    @property
    def storage_url(self) -> str:
        """caviar's URL of the study's storage (``caviar --storage URL ...`` reads it)."""
        return self._inner.storage_url

    def optimize(
        self,
        func: Callable[[Trial], float],
        n_trials: Optional[int] = None,
        timeout: Optional[float] = None,
        n_jobs: int = 1,
        catch: Iterable[type] | type = (),
        callbacks: Optional[Sequence[Callable[["Study", FrozenTrial], None]]] = None,
        gc_after_trial: bool = False,
        show_progress_bar: bool = False,
        *,
        retries: int = 0,
    ) -> None:
        """Runs ``func(trial)`` until this call has started ``n_trials`` trials or ``timeout``
        seconds have passed (with neither, until Ctrl-C).

        ``n_jobs`` threads run trials at once; the GIL is released while caviar samples,
        stores and waits. An exception from ``func`` fails its trial, with the traceback as
        the trial's error, and is raised again here unless its type is in ``catch``.
        Ctrl-C marks the running trials failed ("interrupted") and raises KeyboardInterrupt.
        Several processes (or machines) may optimize one stored study at once: a trial whose
        process died is marked failed by the others, and with ``retries=N`` (caviar's) its
        parameters are queued again up to N times.
        ``show_progress_bar`` draws a bar on stderr (tqdm's when it is installed, else one
        line rewritten in place). ``gc_after_trial`` is accepted for Optuna's sake and does
        nothing.
        """
        if n_trials is not None and n_trials < 0:
            raise ValueError(f"n_trials = {n_trials}; use a number >= 0, or None")
        if isinstance(catch, type):
            catch = (catch,)
        catch = tuple(catch)
        callbacks = list(callbacks or [])
        progress = _Progress(self, n_trials) if show_progress_bar else None
        if progress is not None:
            callbacks.append(progress)
        constraints_func = self._constraints_func
        if constraints_func is not None:
            objective = func

            def func(trial: Trial) -> float:
                value = objective(trial)
                trial._set_constraints(_constraint_values(constraints_func, trial))
                return value

        on_trial = None
        if callbacks:

            def on_trial(record: Dict[str, Any]) -> None:
                frozen = FrozenTrial(record)
                for callback in callbacks:
                    callback(self, frozen)

        try:
            self._inner.optimize(
                func,
                n_trials=n_trials,
                timeout=timeout,
                n_jobs=n_jobs,
                catch=catch,
                on_trial=on_trial,
                retries=retries,
            )
        finally:
            if progress is not None:
                progress.close()

    def stop(self) -> None:
        """From an objective or a callback: the running :meth:`optimize` starts no new
        trials and returns when the running ones end."""
        self._inner.stop()

    def ask(self) -> Trial:
        """A new running trial; end it with :meth:`tell`."""
        return self._inner.ask()

    def tell(
        self,
        trial: Trial | int,
        values: Optional[float | Sequence[float]] = None,
        state: Optional[TrialState] = None,
    ) -> FrozenTrial:
        """Ends a trial from :meth:`ask` (the trial or its number). With a value and no state
        it is complete (a study with several objectives takes one value per direction);
        ``state=TrialState.PRUNED`` or ``TrialState.FAIL`` ends it so."""
        # One value per objective (a single value for a study with one).
        n = len(self.directions)
        if values is not None and not isinstance(values, (list, tuple)):
            values = [values]
        if values is not None and len(values) != n:
            raise ValueError(
                f"tell: {len(values)} values given; this study has {n} objective"
                + ("s" if n != 1 else "")
            )
        several = [float(v) for v in values] if values is not None and n > 1 else None
        value = None if values is None else float(values[0])
        if state is None:
            state_text = "complete" if value is not None else "fail"
        else:
            try:
                state_text = _TELL_STATES[TrialState(state)]
            except (KeyError, ValueError):
                raise ValueError(
                    f"tell: state {state!r} cannot end a trial; use COMPLETE, PRUNED or FAIL"
                ) from None
        number = trial if isinstance(trial, int) else trial.number
        constraints = None
        if self._constraints_func is not None and state_text == "complete":
            target = trial if not isinstance(trial, int) else FrozenTrial(self._inner.trial(number))
            constraints = _constraint_values(self._constraints_func, target)
        self._inner.tell(trial, value, state_text, constraints, several)
        return FrozenTrial(self._inner.trial(number))

    def set_trial_params(
        self,
        number: int,
        params: Dict[str, Any],
        note: Optional[str] = None,
        force: bool = False,
    ) -> List[Dict[str, Any]]:
        """Changes parameters of running trial ``number`` while it trains (panda mode, caviar's
        own). Each value is checked against the parameter's distribution (``force=True``
        allows leaving it, and the record says so); the change is recorded with who asked and
        ``note``, and the trial applies it at its next ``report``, after which ``trial.params``
        and ``trial.suggest_*`` give the new value. Works from any process sharing the study
        (``caviar set`` is the same from a shell). Returns the changes as asked."""
        return self._inner.set_trial_params(number, params, note=note, force=force)

    def pause_trial(self, number: int, note: Optional[str] = None) -> int:
        """Pauses running trial ``number`` (caviar's own): it waits inside its next
        ``report`` until resumed; its heartbeat goes on, so no process presumes it dead.
        ``caviar pause STUDY NUMBER`` is the same from a shell. Returns the request's id."""
        return self._inner.pause_trial(number, note=note)

    def resume_trial(self, number: int, note: Optional[str] = None) -> int:
        """Resumes paused trial ``number`` (``caviar resume``). Returns the request's id."""
        return self._inner.resume_trial(number, note=note)

    def stop_trial(self, number: int, note: Optional[str] = None) -> int:
        """Ends running trial ``number`` as done (``caviar stop``): its next ``should_prune``
        says yes, and raising ``TrialPruned`` then records it COMPLETE with the last value it
        reported, not pruned. Returns the request's id."""
        return self._inner.stop_trial(number, note=note)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Stores a JSON-serializable value with the study (replacing the key's old one)."""
        self._inner.set_user_attr(key, value)

    @property
    def user_attrs(self) -> Dict[str, Any]:
        return self._inner.user_attrs

    def enqueue_trial(
        self,
        params: Dict[str, Any],
        user_attrs: Optional[Dict[str, Any]] = None,
        skip_if_exists: bool = False,
    ) -> None:
        """Queues a trial with these parameter values: the next trial started takes each when
        it suggests that name (from any distribution that holds the value) and samples the
        others. With ``skip_if_exists``, nothing is queued when a trial with the same values
        exists. ``user_attrs`` are stored with the queued trial. Several processes sharing
        the study take queued trials in order."""
        if not isinstance(params, dict):
            raise TypeError(f"enqueue_trial(params): a dict of name -> value, not {params!r}")
        if skip_if_exists and any(t.params == params for t in self.trials):
            return
        self._inner.enqueue(params, user_attrs)

    @property
    def trials(self) -> List[FrozenTrial]:
        return self.get_trials()

    def get_trials(
        self, deepcopy: bool = True, states: Optional[Container[TrialState]] = None
    ) -> List[FrozenTrial]:
        """Every trial in number order; with ``states``, those in one of them."""
        trials = [FrozenTrial(r) for r in self._inner.trials()]
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return trials

    @property
    def best_trial(self) -> FrozenTrial:
        if len(self.directions) > 1:
            raise RuntimeError(
                "a study with several objectives has no single best trial; use best_trials "
                "(its Pareto front)"
            )
        record = self._inner.best_trial()
        if record is None:
            raise ValueError(
                f"study {self.study_name!r} has no complete trial yet, so no best trial"
            )
        return FrozenTrial(record)

    @property
    def best_trials(self) -> List[FrozenTrial]:
        """With several objectives, the Pareto front: every feasible complete trial that no
        other is at least as good as in every objective and better in one. With one, the
        trials that share the best value."""
        return [FrozenTrial(r) for r in self._inner.best_trials()]

    @property
    def directions(self) -> List[StudyDirection]:
        """One direction per objective."""
        return [_direction(d) for d in self._inner.directions]

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None
        return value

    @property
    def best_params(self) -> Dict[str, Any]:
        return self.best_trial.params

    def trials_dataframe(
        self,
        attrs: Sequence[str] = (
            "number",
            "value",
            "datetime_start",
            "datetime_complete",
            "duration",
            "params",
            "user_attrs",
            "state",
        ),
        multi_index: bool = False,
    ) -> Any:
        """The trials as a pandas DataFrame, one row per trial, with Optuna's columns:
        ``number``, ``value``, ``datetime_start``, ``datetime_complete``, ``duration``,
        ``params_NAME``, ``user_attrs_NAME``, ``state`` (``attrs`` picks among them;
        ``multi_index=True`` splits ``params_lr`` into (``params``, ``lr``))."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "trials_dataframe() needs pandas: pip install pandas "
                "(study.trials gives the same data without it)"
            ) from None
        known = {
            "number",
            "value",
            "datetime_start",
            "datetime_complete",
            "duration",
            "params",
            "user_attrs",
            "state",
            "intermediate_values",
        }
        unknown = [a for a in attrs if a not in known]
        if unknown:
            raise ValueError(
                f"trials_dataframe: attrs {unknown} are not known; use some of {sorted(known)}"
            )
        rows = []
        for t in self.trials:
            row: Dict[Any, Any] = {}
            for attr in attrs:
                if attr in ("params", "user_attrs", "intermediate_values"):
                    for name, value in getattr(t, attr).items():
                        row[(attr, name) if multi_index else f"{attr}_{name}"] = value
                elif attr == "state":
                    row[(attr, "") if multi_index else attr] = t.state.name
                else:
                    row[(attr, "") if multi_index else attr] = getattr(t, attr)
            rows.append(row)
        frame = pd.DataFrame(rows)
        if multi_index and len(frame.columns):
            frame.columns = pd.MultiIndex.from_tuples(frame.columns)
        return frame

    def __repr__(self) -> str:
        return repr(self._inner)


class _Progress:
    """`show_progress_bar`: trials done (of this call's `n_trials`) and the best value."""

    def __init__(self, study: "Study", total: Optional[int]) -> None:
        self._done = 0
        self._total = total
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, desc=study.study_name, unit="trial")

    def __call__(self, study: "Study", trial: FrozenTrial) -> None:
        self._done += 1
        try:
            best = f"{study.best_value:.6g}"
        except ValueError:
            best = "none yet"
        if self._bar is not None:
            self._bar.set_postfix_str(f"best {best}", refresh=False)
            self._bar.update(1)
            return
        of = f"/{self._total}" if self._total is not None else ""
        _sys.stderr.write(f"\r{study.study_name}: {self._done}{of} trials, best {best}  ")
        _sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._done:
            _sys.stderr.write("\n")


def _spec(obj: Any, module: Any, what: str) -> Optional[Dict[str, Any]]:
    if obj is None:
        # caviar's automatic sampler (seeded from the OS) and Optuna's median rule.
        obj = samplers.AutoSampler() if module is samplers else pruners.MedianPruner()
    spec = getattr(obj, "_spec", None)
    if spec is None:
        raise TypeError(
            f"{what}={obj!r} is not one of caviar.{module.__name__.split('.')[-1]}'s classes"
        )
    return dict(spec)


def _storage_text(storage: Any) -> Optional[str]:
    if storage is None or isinstance(storage, str):
        return storage
    if isinstance(storage, _os.PathLike):
        return f"sqlite:{_os.fspath(storage)}"
    raise TypeError(
        f"storage={storage!r}: pass a URL such as 'sqlite:study.db' or "
        "'postgres://user@host:5432/db'"
    )


def create_study(
    storage: Any = None,
    sampler: Any = None,
    pruner: Any = None,
    study_name: Optional[str] = None,
    direction: Any = "minimize",
    load_if_exists: bool = False,
    warm_start: Optional[Sequence[str]] = None,
    constraints: Optional[Sequence[str]] = None,
    directions: Optional[Sequence[Any]] = None,
) -> Study:
    """Creates a study (or, with ``load_if_exists``, opens one of that name).

    ``sampler=None`` is ``AutoSampler()`` (a Gaussian process or TPE, chosen per trial;
    Optuna's default is TPE) and, as in Optuna, ``pruner=None`` is ``MedianPruner()`` (it
    prunes only trials that report and ask ``should_prune``).

    ``storage``: ``None`` (in memory, gone with the process), ``"sqlite:PATH"`` (also
    Optuna's ``"sqlite:///PATH"``) or ``"postgres://USER@HOST:PORT/DB"``.

    ``warm_start`` (caviar's, not Optuna's): names of earlier studies in the same storage
    whose complete trials TPE and GP learn from before this study's own (not counted as its
    trials); the study remembers them, so ``load_study`` in another process keeps them.

    ``directions`` (as in Optuna): one direction per objective; the objective then returns a
    sequence of values, ``best_trials`` is the Pareto front, and the study does not prune
    (``pruner=None`` means none). Samplers: ``AutoSampler`` (the default; TPE by Pareto
    front), ``NSGAIISampler``, ``TPESampler``, random, QMC and grid.

    ``constraints`` (caviar's): texts such as ``["memory_mb <= 4000", "latency_ms < 20"]`` on
    values the trials report (``trial.report(value, step, metrics={...})``, the objective as
    ``value``). A complete trial that breaks one is infeasible: ``best_trial`` and the best
    tables skip it and TPE and GP learn to avoid its region. Optuna's way, a sampler's
    ``constraints_func``, works too.
    """
    name = study_name or f"no-name-{_uuid.uuid4()}"
    direction_texts = None
    if directions is not None:
        if direction != "minimize":
            raise ValueError("give direction or directions, not both")
        direction_texts = [_direction_text(d) for d in directions]
        if not direction_texts:
            raise ValueError("directions is empty; give one direction per objective")
        direction = direction_texts[0]
        if len(direction_texts) > 1:
            if pruner is None:
                pruner = pruners.NopPruner()
            elif pruner._spec.get("kind") != "none":
                raise ValueError(
                    f"pruner={pruner!r}: a study with {len(direction_texts)} objectives does "
                    "not prune (a pruner judges one curve); leave pruner out"
                )
            kind = getattr(sampler, "_spec", {}).get("kind")
            if kind in ("gp", "zoom"):
                raise ValueError(
                    f"sampler={sampler!r} optimises one objective; with "
                    f"{len(direction_texts)} use NSGAIISampler or TPESampler"
                )
    inner = _caviar.open_study(
        name,
        storage=_storage_text(storage),
        direction=_direction_text(direction),
        sampler=_spec(sampler, samplers, "sampler"),
        pruner=_spec(pruner, pruners, "pruner"),
        load_if_exists=load_if_exists,
        create=True,
        grid=getattr(sampler, "_grid", None),
        warm_start=list(warm_start) if warm_start is not None else None,
        constraints=list(constraints) if constraints is not None else None,
        directions=direction_texts,
    )
    return Study(inner, getattr(sampler, "_constraints_func", None))


def load_study(
    study_name: Optional[str] = None,
    storage: Any = None,
    sampler: Any = None,
    pruner: Any = None,
) -> Study:
    """Opens a stored study; several processes (or machines) may optimize it at once."""
    url = _storage_text(storage)
    if url is None:
        raise ValueError("load_study needs storage=...: an in-memory study lives in one object")
    if study_name is None:
        names = get_all_study_names(url)
        if len(names) != 1:
            raise ValueError(
                f"load_study: study_name is needed; {url} holds {len(names)} studies"
            )
        study_name = names[0]
    inner = _caviar.open_study(
        study_name,
        storage=url,
        sampler=_spec(sampler, samplers, "sampler"),
        pruner=_spec(pruner, pruners, "pruner"),
        load_if_exists=True,
        create=False,
        grid=getattr(sampler, "_grid", None),
    )
    return Study(inner, getattr(sampler, "_constraints_func", None))


def delete_study(study_name: str, storage: Any) -> None:
    """Deletes a stored study with its trials, curves and attributes."""
    url = _storage_text(storage)
    if url is None:
        raise ValueError("delete_study needs storage=...: an in-memory study lives in one object")
    _caviar.delete_study(study_name, url)


def get_all_study_summaries(storage: Any) -> List[StudySummary]:
    """Every study in a storage."""
    return [StudySummary(r) for r in _caviar.study_summaries(_storage_text(storage))]


def get_all_study_names(storage: Any) -> List[str]:
    """The names of every study in a storage."""
    return [r["study_name"] for r in _caviar.study_summaries(_storage_text(storage))]

# Optuna's submodule names (`optuna.trial.TrialState`, `optuna.study.StudyDirection`, ...),
# imported last: they re-export the classes above.
from . import exceptions, logging, study, trial  # noqa: E402
