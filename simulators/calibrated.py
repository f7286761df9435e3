"""The calibrated MovieLens world: a catalog, a user config and a population of fitted users.

:func:`load_calibrated_world` returns what the statistical simulator needs::

    from recoworld.simulators import StatisticalUsers
    from recoworld.simulators.calibrated import load_calibrated_world

    catalog, config, population = load_calibrated_world()
    young_scifi = population.subset({"age": [0, 24], "favourite_genre": "Sci-Fi"})
    users = StatisticalUsers(catalog, config, young_scifi)

In ``recoworld run`` this is the default world: ``world=movielens`` reads the artifact
(:func:`calibrated_catalog`) and makes ``simulator=calibrated`` (:func:`calibrated_users`,
with a population spec in ``simulator.population``) its default simulator.

``recoworld calibrate`` (:mod:`recoworld.apps.calibrate`; ``recoworld run`` calls it on
first use) fits the world to MovieLens-100K and saves it in RecoWorld's cache as an artifact folder
holding ``world.json`` (the config, the fit's settings and diagnostics, titles, genre
names and the users' text fields) and ``tensors.pt`` (item features, genres, popularity,
quality, user interests and numeric traits); later calls only read it back
(``benchmarks/fidelity.py`` times both). The artifact's name carries :data:`ARTIFACT_VERSION`, so a change to the fit
never reads a stale artifact.

**Saving and loading** are safe across processes (two ``recoworld calibrate --force`` at
once, a sweep's runs loading the world while one replaces it), as
:mod:`recoworld.simulators.world_folder` states: the folder is written whole or not at all,
saves of one world take its lock in turn (the second waits for the first, so the world ends
as the last save wrote it), a load reads one whole world, and what a killed save left goes at
the next save or load (:func:`finish_replacement`). The lock's file, the hidden
``.NAME.lock``, stays beside the world after a save: it locks nothing while no one saves,
and the lock of a killed save binds no one.

**Population specs** select and weight the fitted users: a mapping from a column of
:attr:`CalibratedPopulation.users` to a condition —

=================================  ===============================================
``"gender": "F"``                  equal to a value
``"occupation": ["student", ...]`` one of several values
``"age": [0, 24]``                 a numeric range, bounds included (``None``: open)
``"patience": "low"``              a third of the users: ``low``, ``medium``, ``high``
                                   (tertiles of the column over all fitted users)
``"gender": {"F": 0.7, "M": 0.3}`` a distribution: users are drawn so that the shares
                                   of these values (or levels) are as given
=================================  ===============================================

e.g. ``{"age": [0, 24], "favourite_genre": "Sci-Fi"}`` ("users under 25 who mostly watch
Sci-Fi") or ``{"patience": "low"}``. A spec that leaves no user raises ``ValueError``
naming the condition that emptied it.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recoworld import rng
from recoworld.catalog import Catalog, GenreNameError
from recoworld.simulators import world_folder
from recoworld.simulators.population import FittedUsersError, Population, UserTraits, check_fitted_traits
from recoworld.simulators.population_specs import as_spec, select
from recoworld.simulators.statistical import StatisticalUserConfig
# The folder's mechanics live in world_folder; both names stay importable from here.
from recoworld.simulators.world_folder import finish_replacement, is_world  # noqa: F401

#: Bumped whenever the fit changes what it writes, so that old artifacts are not reused.
ARTIFACT_VERSION = 20
ARTIFACT_NAME = f"movielens-100k-v{ARTIFACT_VERSION}"
S_CALIBRATED = 7  # random stream of the population's draws (see recoworld.rng)

#: Per-user columns stored as tensors (the others are text, stored in the JSON file).
NUMERIC_COLUMNS = ("user_id", "age", "n_ratings", "n_sessions", "mean_rating", "patience", "activity",
                   "novelty", "conformity", "popularity_bias", "rating_bias", "genre_straying",
                   "mean_session_length")
TEXT_COLUMNS = ("gender", "occupation", "zip_code", "favourite_genre")
#: The users' column (and the catalog's entry in world.json) of the data's own ids, as text.
ORIGINAL_ID = "original_id"


@dataclass
class CalibratedTraits(UserTraits):
    """:class:`UserTraits` plus the traits only fitted users have.

    Attributes:
        conformity: ``[n]`` in ``(0, 1)``, how closely the user's ratings follow the crowd
            (read by :class:`~recoworld.simulators.social.SocialStatisticalUsers`).
        rating_bias: ``[n]`` stars added to the user's rating level (read by
            ``StatisticalUsers``).
    """

    conformity: torch.Tensor = None
    rating_bias: torch.Tensor = None


@dataclass(eq=False)
class CalibratedWorld:
    """Everything the calibration fitted.

    Attributes:
        catalog: the items (MovieLens' movies, or a log's) with fitted features
            (training-split popularity and quality); item ``i`` is the ``i``-th id of the data
            in sorted order, as a run's ``slate`` shows it.
        config: the fitted response and dynamics parameters.
        users: one row per fitted user: ``user_id`` (the dense id of the data: MovieLens id
            - 1), ``original_id`` (the data's own id, as text), demographics (``age``,
            ``gender``, ``occupation``, ``zip_code``), activity statistics (``n_ratings``,
            ``n_sessions``, ``mean_session_length``, ``mean_rating``), ``favourite_genre``
            and the traits ``patience``, ``activity``, ``novelty``, ``conformity``,
            ``popularity_bias``, ``rating_bias``, ``genre_straying``.
        interest: ``[n_users, D]`` unit interest vectors, row ``i`` for ``users.iloc[i]``.
        meta: the calibration's settings, split, diagnostics and timings.
        original_item_ids: item ``i``'s id in the data, as text (MovieLens' movie id, or
            the log's ``item``, :mod:`recoworld.data.interactions`).

    The data's own ids and the world's dense ones map both ways, for one id or an array of
    them (a run's slates): :meth:`original_item_id`, :meth:`dense_item_id`,
    :meth:`original_user_id`, :meth:`dense_user_id`. A world made without them (built in
    Python with no ``original_item_ids`` and users without an ``original_id`` column; every
    world ``recoworld calibrate`` fits has them) still saves, loads and runs, and its maps
    raise ``ValueError`` saying how to fit it with them. Each map is built on its first call
    and kept for the next ones; assigning a new ``users`` table, ``original_item_ids`` or
    ``catalog`` to the world builds it again (a table changed in place is not noticed: assign
    the changed copy).
    """

    catalog: Catalog
    config: StatisticalUserConfig
    users: pd.DataFrame
    interest: torch.Tensor
    meta: dict = field(default_factory=dict)
    original_item_ids: Sequence[str] | None = None
    # The id maps' indexes, built once: (the fields a map was built from, its known ids, what they map to).
    _id_maps: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.original_item_ids is not None and len(self.original_item_ids) != self.catalog.n_items:
            raise ValueError(f"{len(self.original_item_ids)} original item ids for the catalog's "
                             f"{self.catalog.n_items} items; give one per item, in item-id order")

    def original_item_id(self, item_id):
        """The data's id (text) of the world's item ``item_id`` (an int, or an array of them
        such as a run log's slates: an array of texts of its shape)."""
        known, mapped = self._id_map("original_item")
        return _translate(known, mapped, item_id, "item",
                          f"not in the catalog (item ids 0..{self.catalog.n_items - 1})")

    def dense_item_id(self, original):
        """The world's item id (int) of the data's item ``original`` (its id as the files
        write it; an int stands for its digits), or an array of them for an array."""
        known, mapped = self._id_map("dense_item")
        return _translate(known, mapped, original, "item", f"not an item of this world: {self._where('item')}")

    def original_user_id(self, user_id):
        """The data's id (text) of the world's user ``user_id`` (``users["user_id"]``), or
        an array of them for an array."""
        known, mapped = self._id_map("original_user")
        return _translate(known, mapped, user_id, "user", f"not one of this world's {len(self.users)} fitted users "
                          "(users['user_id'])")

    def dense_user_id(self, original):
        """The world's ``user_id`` of the data's user ``original``, or an array of them for an array."""
        known, mapped = self._id_map("dense_user")
        return _translate(known, mapped, original, "user", f"not a fitted user of this world: {self._where('user')}")

    def _id_map(self, name: str) -> tuple[pd.Index, np.ndarray]:
        """The ids map ``name`` knows (an index) and what each maps to, built on first use.

        Kept because a pandas index builds its hash table on its first lookup: a new index per
        call paid for it on every call. The map is kept with the very objects it was built from
        and built again where one of them was replaced. Nothing is kept for a world without the
        data's ids: each call raises again.
        """
        sources = (self.catalog, self.original_item_ids) if name.endswith("_item") else (self.users,)
        kept = self._id_maps.get(name)
        if kept is not None and all(a is b for a, b in zip(kept[0], sources)):
            return kept[1], kept[2]
        if name == "original_item":
            known, mapped = pd.RangeIndex(self.catalog.n_items), self._originals("item", self.original_item_ids)
        elif name == "dense_item":
            ids = self._originals("item", self.original_item_ids)
            known, mapped = pd.Index(ids, dtype=object), np.arange(len(ids))
        elif name == "original_user":
            known, mapped = pd.Index(self.users["user_id"]), self._originals("user", self.users.get(ORIGINAL_ID))
        else:
            known = pd.Index(self._originals("user", self.users.get(ORIGINAL_ID)), dtype=object)
            mapped = self.users["user_id"].to_numpy()
        self._id_maps[name] = (sources, known, mapped)
        return known, mapped

    def _originals(self, what: str, ids) -> np.ndarray:
        if ids is None:
            raise ValueError(f"this calibrated world has no map between its {what} ids and the data's: it was made "
                             f"without them; fit it again to keep them: {self.refit_advice()}")
        return np.asarray(ids, dtype=object)

    def refit_advice(self, path: str | Path | None = None) -> str:
        """How to fit this world again as it was fitted, into ``path`` (``None``: the text names
        the folder FOLDER), in words for a message, the code in backticks: from the data it was
        fitted on (its log and tables, or MovieLens-100K) and with the fit's settings
        (``meta["calibration"]``; ``threads`` among them, as the number of threads can change
        the fitted floats), the ``recoworld calibrate`` command where it takes them all
        (``--users N`` included), otherwise the call of
        :func:`~recoworld.apps.calibrate.calibrate` in Python that names the settings the
        command does not take; for data given in Python, that call with the data named DATA."""
        return _refit_advice(self.meta, None if path is None else Path(path))

    def _where(self, what: str) -> str:
        """Where the data's ``what`` ids come from, for a message about an unknown one."""
        source = self.meta.get("data", {}).get("source", {})
        kind = source.get("kind")
        if kind == "interactions":
            table = source.get("items" if what == "item" else "users")
            where = f"the {what} column of the log {source['data']}" + (f" and of the {what} table {table}"
                                                                        if table else "")
            ids = f"its {what} ids are those of {where}, as the files write them"
        elif kind == "movielens-100k":
            ids = f"its {what} ids are MovieLens-100K's {'movie' if what == 'item' else 'user'} ids"
        else:
            ids = f"its {what} ids are the {what}_id values of the data given to calibrate()"
        # A world fitted on --users N holds some of the data's users only.
        return ids + (f" (it holds {len(self.users)} fitted users)" if what == "user" else "")

    def population(self, spec: Mapping | None = None) -> CalibratedPopulation:
        return CalibratedPopulation(self.users, self.interest, spec)

    def save(self, path: str | Path, replace: bool = False) -> Path:
        """Write the artifact folder ``path`` (:func:`recoworld.simulators.world_folder.save`),
        which is never half a world.

        A world already at ``path`` is kept (``replace=False``: another process saved the same
        artifact first, and theirs is as good as ours) or replaced (``replace=True``). One
        process at a time saves a world: a save holds the world's lock
        (:func:`recoworld.logs.writer_lock`) while it writes and renames (not while the world
        is fitted), so two replacements at once leave the second one's world, whole. A save
        that finds another saving waits for it, with a warning, and after
        :data:`recoworld.logs.WRITER_LOCK_TIMEOUT_S` raises ``TimeoutError`` naming the world,
        the lock file and what to do. The lock's file, the hidden ``.NAME.lock``, stays beside
        the world.
        """
        return world_folder.save(path, self._write, replace=replace)

    def _write(self, folder: Path) -> None:
        cat = self.catalog
        # One id per save, in both files: a tensors.pt copied in from another world is refused at load.
        save_id = uuid.uuid4().hex
        document = {
            "artifact_version": ARTIFACT_VERSION,
            "save_id": save_id,
            "config": asdict(self.config),
            "meta": self.meta,
            "catalog": {"name": cat.name, "genre_names": list(cat.genre_names), "titles": list(cat.titles)},
            "users": {c: [str(v) for v in self.users[c]] for c in TEXT_COLUMNS},
        }
        if ORIGINAL_ID in self.users:
            document["users"][ORIGINAL_ID] = [str(v) for v in self.users[ORIGINAL_ID]]
        if self.original_item_ids is not None:
            document["catalog"][ORIGINAL_ID] = [str(v) for v in self.original_item_ids]
        (folder / "world.json").write_text(json.dumps(document, indent=1))
        tensors = {
            "features": cat.features, "genres": cat.genres, "popularity": cat.popularity,
            "quality": cat.quality, "interest": self.interest,
        }
        tensors.update({f"users.{c}": torch.tensor(self.users[c].to_numpy(dtype=np.float64))
                        for c in NUMERIC_COLUMNS})
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        torch.save({**tensors, "save_id": save_id}, folder / "tensors.pt")

    @classmethod
    def load(cls, path: str | Path) -> CalibratedWorld:
        """Read an artifact folder written by :meth:`save`: one whole world, the one at
        ``path`` before a replacement that runs meanwhile or the one after it, never a mix
        (:func:`recoworld.simulators.world_folder.reading`).

        A load waits neither for other loads nor for a save that is still writing; it waits
        for a running save only where a replacement is renaming folders or a stopped save left
        something to complete or clear, which it does first (:func:`finish_replacement`).

        Raises :class:`UnreadableWorld` (a ``ValueError``) naming the file and what is wrong with
        it where the folder is not one whole world of this version (a file cut short or damaged,
        a folder where one of its files goes, its tensors.pt missing, :class:`MissingWorldFile`,
        a tensor of the wrong shape, a ``tensors.pt`` of another world, a fitted user's trait or
        interest vector that the simulator cannot take,
        :func:`~recoworld.simulators.population.check_fitted_traits`),
        with how to fit it again as it was fitted, from the data its world.json names (a log's
        world from that log, never MovieLens-100K), :meth:`refit_advice`. A whole
        world whose genre name :class:`~recoworld.catalog.Catalog` refuses (one holding ``|``,
        which earlier RecoWorlds took from a list entry of an item table's genres) raises
        ``ValueError`` naming the genre and the command that fits it again once the genre is
        renamed in the data. A folder without world.json raises ``FileNotFoundError`` naming
        the files a world's folder holds.
        """
        path = Path(path).expanduser()
        with ExitStack() as stack:
            try:
                document_file, tensors_file = stack.enter_context(world_folder.reading(path))
            except FileNotFoundError:
                half = missing_world_file(path)
                if half is None:
                    raise  # no world.json: world_folder's message says what a world's folder holds
                raise half from None
            except IsADirectoryError:
                raise _folder_for_file(path) from None
            try:
                document = json.load(document_file)
            except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
                raise _damaged(path, "world.json", f"is not JSON ({error})") from None
            if not isinstance(document, dict):
                raise _damaged(path, "world.json", f"holds a {type(document).__name__}, not a world's document")
            if document.get("artifact_version") != ARTIFACT_VERSION:
                raise UnreadableWorld(f"{path} holds artifact version {document.get('artifact_version')}, this "
                                      f"RecoWorld reads version {ARTIFACT_VERSION}; delete it to recalibrate "
                                      f"{recalibration_advice(document, path)}")
            try:
                tensors = torch.load(tensors_file, weights_only=True)
            except Exception as error:  # torch raises anything from EOFError to UnpicklingError on a bad file
                said = str(error).strip().split(". ")[0].rstrip(".") or "it ends early"  # torch's advice follows
                raise _damaged(path, "tensors.pt", f"cannot be read ({type(error).__name__}: {said})",
                               document) from None
        _check_world_files(path, document, tensors)
        info = document["catalog"]
        try:
            catalog = Catalog(tensors["features"], tensors["genres"], tuple(info["genre_names"]), info["titles"],
                              tensors["popularity"], tensors["quality"], name=info["name"])
            config = StatisticalUserConfig(**document["config"])
        except GenreNameError as error:  # whole files, but a name an earlier RecoWorld took and this one refuses
            raise _refused_genre(path, error, document["meta"]) from None
        except ValueError as error:  # the catalog's and the config's own checks, which name the field
            raise _damaged(path, None, f"do not make a world: {error}", document) from None
        users = pd.DataFrame({c: tensors[f"users.{c}"].numpy() for c in NUMERIC_COLUMNS})
        for c in ("user_id", "age", "n_ratings", "n_sessions"):
            users[c] = users[c].astype(np.int64)
        # A world made without the original ids has none (the class docstring).
        original = [ORIGINAL_ID] if ORIGINAL_ID in document["users"] else []
        for c in (*TEXT_COLUMNS, *original):
            users[c] = document["users"][c]
        users = users[[NUMERIC_COLUMNS[0], *original, NUMERIC_COLUMNS[1], *TEXT_COLUMNS, *NUMERIC_COLUMNS[2:]]]
        # Here, not first where a population is built: the fix of a saved world is to fit it again,
        # not to correct a table its user does not hold.
        try:
            check_fitted_traits(users)
            _check_interest(tensors["interest"], users)
        except FittedUsersError as error:
            raise _damaged(path, "tensors.pt", f"holds a user the simulator cannot take: {error.problem}",
                           document) from None
        return cls(catalog, config, users, tensors["interest"], document["meta"], info.get(ORIGINAL_ID))


class UnreadableWorld(ValueError):
    """A folder that :meth:`CalibratedWorld.load` cannot read as a whole world of this
    version (damaged, another artifact version, a genre name this RecoWorld refuses). Its
    message names the file and the problem, and ends with how to fit the world again from
    the data its world.json names (:func:`recalibration_advice`), so a caller adds no advice
    of its own."""


class MissingWorldFile(UnreadableWorld, FileNotFoundError):
    """A world's folder that holds its world.json but not its tensors.pt: half a world, which
    a save never leaves (:mod:`~recoworld.simulators.world_folder`), so a copy cut short or a
    file deleted by hand. Its message, as :class:`UnreadableWorld`'s, says how to fit the world
    again from the data that world.json names. It is a ``FileNotFoundError`` too, as a load of
    that folder raised before, so that callers catching either still catch it."""


def missing_world_file(path: str | Path) -> MissingWorldFile | None:
    """The error :meth:`CalibratedWorld.load` raises for half a world at ``path`` (a
    :class:`MissingWorldFile`), or ``None`` where ``path`` holds no world.json or holds
    tensors.pt beside it. It reads world.json alone, for the data to fit again from: a check
    before a long job that will load the world (``recoworld run`` makes it)."""
    path = Path(path).expanduser()
    if not (path / "world.json").is_file() or (path / "tensors.pt").exists():
        return None
    try:
        document = json.loads((path / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        document = None  # unreadable: the advice then names every way to fit it again
    return MissingWorldFile(f"{path} is half a calibrated world: it has no tensors.pt beside its world.json (a copy "
                            f"cut short, or a file deleted); delete it to recalibrate "
                            f"{recalibration_advice(document, path)}")


def _folder_for_file(path: Path) -> UnreadableWorld:
    """The error of a world's folder where a folder stands in place of world.json or
    tensors.pt (a copy or an edit by hand; no save leaves one), with the advice that
    world.json, where it is a readable file, gives."""
    folders = [name for name in world_folder.WORLD_FILES if (path / name).is_dir()]
    document = None
    if "world.json" not in folders:
        try:
            document = json.loads((path / "world.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            pass  # unreadable: the advice then names every way to fit it again
    if len(folders) == 1:
        return _damaged(path, folders[0], "is a folder, not a file", document)
    return _damaged(path, None, "are folders, not files", document)


def _damaged(path: Path, file: str | None, problem: str, document: dict | None = None) -> UnreadableWorld:
    """The error of a folder that is not one whole world: ``file`` (``None``: both files)
    ``problem``; the fix fits it again from the data that ``document`` (world.json; ``None``
    where it cannot be read) names."""
    what = f"{path / file}" if file else f"{path}: world.json and tensors.pt"
    return UnreadableWorld(f"{what} {problem}; the calibrated world at {path} is damaged: delete it to recalibrate "
                           f"{recalibration_advice(document, path)}")


def recalibration_advice(document: dict | None, path: str | Path) -> str:
    """How to fit the world at ``path`` again from the data it was fitted on, which its
    world.json ``document`` names (``None``: it cannot be read): a clause for a message, to
    follow "delete it to recalibrate" (it begins "with the log it was fitted on, ...", or the
    like, and ends with the command or the Python call). Never a bare
    ``recoworld calibrate --force``: at a log's world, that fits MovieLens-100K."""
    path = Path(path)
    meta = document.get("meta") if isinstance(document, dict) else None
    source = _source(meta)
    kind = source.get("kind")
    if kind == "interactions" and isinstance(source.get("data"), str):
        return f"with the log it was fitted on, or fit it again in place: {_refit_advice(meta, path)}"
    if kind == "movielens-100k":
        return f"on MovieLens-100K, as it was fitted, or fit it again in place: {_refit_advice(meta, path)}"
    if kind is not None:  # data given to calibrate() in Python, in MovieLens-100K's layout
        return f"with the data it was fitted on, {_refit_advice(meta, path)}"  # "in Python: `...`"
    unknown = " does not say which" if isinstance(document, dict) else ", which names them, cannot be read"
    out = shlex.quote(str(path))
    return (f"with the data it was fitted from (its world.json{unknown}), or fit it again in place: `recoworld "
            f"calibrate --data LOG --out {out} --force` (with the log's --items and --user-table, if it had them) for "
            f"a log's world, `recoworld calibrate --out {out} --force` for MovieLens-100K's, calibrate() in Python "
            "for data given there")


def _refused_genre(path: Path, error: GenreNameError, meta: dict) -> ValueError:
    """The error of a world whose files are whole but whose genre name this RecoWorld refuses
    (:class:`~recoworld.catalog.Catalog`): an earlier one fitted it from a table whose genre
    held ``|`` in a list entry. Read as it is, the world's catalog would not read back from
    its own table; renamed here, population specs and instructions naming the genre would
    stop matching it. So the fix is to rename it in the data and fit again."""
    source = _source(meta)
    interactions = source.get("kind") == "interactions" and source.get("items")
    table = f" (the item table {source['items']})" if interactions else ""
    renamed = f", e.g. to {error.suggestion!r}," if error.suggestion is not None else ""
    return UnreadableWorld(f"{path}: this calibrated world's genre {error.name!r} (catalog.genre_names[{error.column}] "
                           f"in world.json), {error.problem}, is a name this RecoWorld refuses, though the earlier "
                           f"RecoWorld that fitted the world took it (the world is not damaged). Rename the genre in "
                           f"the data it was fitted from{table}{renamed} and fit the world again: "
                           f"{_refit_advice(meta, path)}")


#: ``asdict(CalibrationConfig())`` of :mod:`recoworld.apps.calibrate`, the settings that
#: ``recoworld calibrate [--users N]`` fits with. ``choice`` is ``None`` here, for its
#: defaults are ``asdict(ChoiceFitConfig())``, read where they are needed (each key is compared
#: on its own). The applications' layer is above this one, which may not import it
#: (docs/ARCHITECTURE.md); tests/test_h132_refit_advice.py holds the two equal.
_CALIBRATE_DEFAULTS = {
    "holdout_fraction": 0.2, "validation_fraction": 0.2, "session_gap_minutes": 30.0, "choice": None,
    "exposure_odds": 1.0, "users": None, "leave_steps": 80, "leave_users": 300, "lives_iterations": 20,
    "threads": 1, "seed": 0, "split": "latest", "held_out_users": 0.0,
}


def _refit_advice(meta: dict, path: Path | None = None) -> str:
    """How to fit the world of ``meta`` again as it was fitted, from the data it was fitted
    on and with the fit's settings, into ``path`` (``None``: the folder is named FOLDER):
    :meth:`CalibratedWorld.refit_advice`."""
    source = _source(meta)
    kind = source.get("kind")
    log = kind == "interactions" and isinstance(source.get("data"), str)
    settings = _fit_settings(meta)
    # The command takes --users N; any other setting of the fit is given in Python.
    python_only = [name for name in settings if name != "users"]
    if (log or kind == "movielens-100k") and not python_only:
        users = f" --users {settings['users']}" if "users" in settings else ""
        if not log:
            return (f"`recoworld calibrate{users} --force` (with --out FOLDER where this world is not the cache's)"
                    if path is None else f"`recoworld calibrate{users} --out {shlex.quote(str(path))} --force`")
        tables = "".join(f" {flag} {shlex.quote(source[key])}" for flag, key in (("--items", "items"),
                                                                                 ("--user-table", "users"))
                         if isinstance(source.get(key), str))
        return (f"`recoworld calibrate --data {shlex.quote(source['data'])}{tables}{users} --out "
                f"{'FOLDER' if path is None else shlex.quote(str(path))} --force`"
                + (" (FOLDER: this world's)" if path is None else ""))
    # The call of calibrate() in Python, and where its names come from.
    config = ", ".join(f"{name}={value}" for name, value in settings.items())
    arguments = [f"CalibrationConfig({config})"] if config else []
    names = ["calibrate() and CalibrationConfig from recoworld.apps.calibrate" if config else
             "calibrate() from recoworld.apps.calibrate"]
    if "choice" in settings:
        names.append("ChoiceFitConfig from recoworld.calibration.choice")
    notes = ["FOLDER: this world's"] if path is None else []
    if log:
        tables = [f"{key}={source[key]!r}" for key in ("items", "users") if isinstance(source.get(key), str)]
        arguments.append(f"data=load_interactions({', '.join([repr(source['data']), *tables])})")
        names.append("load_interactions from recoworld.data.interactions")
    elif kind != "movielens-100k":  # calibrate()'s own data, when given none, is MovieLens-100K
        arguments.append("data=DATA")
        notes.append("DATA: the data it was fitted on")
    why = ""
    if python_only and (log or kind == "movielens-100k"):
        why = (f", as `recoworld calibrate` has no flag for the fit's setting{'s' if len(python_only) > 1 else ''} "
               f"{', '.join(python_only)}")
    out = "FOLDER" if path is None else repr(str(path))
    return (f"in Python{why}: `calibrate({', '.join(arguments)}).save({out}, replace=True)` "
            f"({'; '.join([*notes, ', '.join(names)])})")


def _fit_settings(meta: Mapping | None) -> dict[str, str]:
    """The settings of the fit that recorded ``meta`` (``meta["calibration"]``) that are not
    :class:`~recoworld.apps.calibrate.CalibrationConfig`'s defaults, in the order of its
    fields, each value as Python writes it; ``{}`` where the meta records none. ``threads``
    counts among them: the number of threads changes the order of the fit's parallel sums, which
    can change its floats, so a world fitted with another number is fitted again with it."""
    recorded = meta.get("calibration") if isinstance(meta, Mapping) else None
    settings = {}
    for name, default in _CALIBRATE_DEFAULTS.items():
        if not isinstance(recorded, dict) or name not in recorded:
            continue
        if name == "choice" and isinstance(recorded[name], dict):
            from recoworld.calibration.choice import ChoiceFitConfig

            defaults = asdict(ChoiceFitConfig())
            changed = [f"{key}={value!r}" for key, value in recorded[name].items()
                       if key in defaults and value != defaults[key]]
            if changed:
                settings[name] = f"ChoiceFitConfig({', '.join(changed)})"
        elif name != "choice" and recorded[name] != default:
            settings[name] = repr(recorded[name])
    return settings


def _source(meta) -> dict:
    """``meta["data"]["source"]``, the data a world was fitted on, or ``{}`` where the meta
    holds none (a world made in Python, or a world.json that was edited or damaged)."""
    data = meta.get("data") if isinstance(meta, dict) else None
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, dict) else {}


def _check_world_files(path: Path, document: dict, tensors) -> None:
    """Raise :func:`_damaged` unless ``document`` (world.json) and ``tensors`` (tensors.pt) hold
    every part of one world, with one row per fitted user; :meth:`CalibratedWorld.load` then
    builds it, and the catalog and the config check their own fields."""
    def damaged(file: str | None, problem: str) -> ValueError:  # world.json names the data to fit again
        return _damaged(path, file, problem, document)

    if not isinstance(tensors, dict):
        raise damaged("tensors.pt", f"holds a {type(tensors).__name__}, not a world's tensors")
    missing = [k for k in ("config", "meta", "catalog", "users") if k not in document]
    missing += [f"catalog.{k}" for k in ("name", "genre_names", "titles") if k not in document.get("catalog", {})]
    missing += [f"users.{c}" for c in TEXT_COLUMNS if c not in document.get("users", {})]
    if missing:
        raise damaged("world.json", f"lacks {', '.join(missing)}")
    config_fields = {f.name for f in fields(StatisticalUserConfig)}
    # A field left out would silently take the synthetic default instead of its fitted value.
    if set(document["config"]) != config_fields:
        odd = sorted(config_fields - set(document["config"])) + sorted(set(document["config"]) - config_fields)
        raise damaged("world.json", f"has a config that is not this RecoWorld's (fields {', '.join(odd)})")
    if "save_id" in document and tensors.get("save_id") != document["save_id"]:
        raise damaged("tensors.pt", "was not saved with this world.json (it is another world's)")
    names = ["features", "genres", "popularity", "quality", "interest", *(f"users.{c}" for c in NUMERIC_COLUMNS)]
    missing = [name for name in names if not isinstance(tensors.get(name), torch.Tensor)]
    if missing:
        raise damaged("tensors.pt", f"lacks {', '.join(missing)}")
    n_users = len(tensors["users.user_id"])
    for column in NUMERIC_COLUMNS:
        shape = tuple(tensors[f"users.{column}"].shape)
        if shape != (n_users,):
            raise damaged("tensors.pt", f"has users.{column} of shape {shape} for the {n_users} users of "
                          "users.user_id")
    interest, features = tensors["interest"], tensors["features"]
    if features.ndim != 2 or tuple(interest.shape) != (n_users, features.shape[1]):
        raise damaged("tensors.pt", f"has interest of shape {tuple(interest.shape)} for {n_users} users and "
                      f"item features of shape {tuple(features.shape)} (one feature-sized vector per user)")
    items = document["catalog"]
    if ORIGINAL_ID in items and len(items[ORIGINAL_ID]) != len(items["titles"]):
        raise damaged("world.json", f"has {len(items[ORIGINAL_ID])} catalog.{ORIGINAL_ID} entries for "
                      f"{len(items['titles'])} titles (one per item)")
    for column in (*TEXT_COLUMNS, ORIGINAL_ID):
        if column in document["users"] and len(document["users"][column]) != n_users:
            raise damaged(None, f"do not agree: world.json's users.{column} has "
                          f"{len(document['users'][column])} entries for the {n_users} users of tensors.pt")


def _translate(known: pd.Index, mapped: np.ndarray, asked, what: str, unknown: str):
    """``mapped[j]`` for each id of ``asked`` found at ``known[j]`` (one id, or an array of
    any shape); ``ValueError`` naming the first id not found, which is ``unknown``. Integer
    ``known`` ids take integers only; text ones take the text a file writes for each id."""
    values = np.asarray(asked.cpu() if isinstance(asked, torch.Tensor) else asked)
    if known.dtype == object:
        from recoworld.data.interactions import id_text  # as the log's ids were read

        keys = [id_text(v) for v in values.ravel()]
    elif values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} ids are integers; got {_plain(values.ravel()[0])!r}")
    else:
        keys = values.ravel()
    at = known.get_indexer(keys)
    if (at < 0).any():
        first = keys[int(np.flatnonzero(at < 0)[0])]
        raise ValueError(f"{what} {_plain(first)!r} is {unknown}")
    found = mapped[at].reshape(values.shape)
    return found.item() if values.ndim == 0 else found


def _plain(value):
    """A numpy scalar as the Python value it holds (``3``, not ``np.int64(3)``, in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def default_path() -> Path:
    """Where :func:`load_calibrated_world` keeps the artifact: ``<cache>/calibrated/<name>``."""
    from recoworld.data.cache import cache_dir

    return cache_dir() / "calibrated" / ARTIFACT_NAME


def load_world(path: str | Path | None = None) -> CalibratedWorld:
    """The calibrated world at ``path`` (default: the cache).

    The fit is an application above the simulators, so a missing world is an error here:
    ``recoworld calibrate`` (or :func:`recoworld.apps.calibrate.ensure_world`, which fits
    first when needed, as ``recoworld run`` does) writes it.
    """
    path = default_path() if path is None else Path(path).expanduser()
    if not is_world(path):
        where = "" if path == default_path() else f" --out {path}"
        raise FileNotFoundError(f"no calibrated world at {path}; run `recoworld calibrate{where}` to fit it "
                                "(about a minute), or give world.path the folder of an existing one")
    return CalibratedWorld.load(path)


def load_calibrated_world(path: str | Path | None = None
                          ) -> tuple[Catalog, StatisticalUserConfig, CalibratedPopulation]:
    """``(catalog, config, population)`` of the calibrated MovieLens world (module docstring)."""
    world = load_world(path)
    return world.catalog, world.config, world.population()


# Hydra-instantiable pieces (``_target_``), each reading the same cached artifact.
def calibrated_catalog(path: str | None = None) -> Catalog:
    """The calibrated world's catalog."""
    return load_world(path).catalog


def calibrated_config(path: str | None = None, **overrides) -> StatisticalUserConfig:
    """The calibrated world's simulator config, with any field overridden."""
    config = asdict(load_world(path).config)
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise ValueError(f"StatisticalUserConfig has no field(s) {unknown}")
    return StatisticalUserConfig(**{**config, **overrides})


def calibrated_population(spec: Mapping | None = None, path: str | None = None) -> CalibratedPopulation:
    """The calibrated world's population, restricted by ``spec``."""
    return load_world(path).population(spec)


def calibrated_users(catalog: Catalog, path: str | None = None, population: Mapping | None = None,
                     config: Mapping | None = None, device: str = "cpu", kernel: str = "auto"):
    """Statistical users drawn from the calibrated population (``simulator=calibrated``).

    Args:
        catalog: the world's catalog; it must be the calibrated one (``world=movielens``).
        path: the artifact folder (``None``: the cache).
        population: a population spec (module docstring), e.g. ``{"patience": "low"}``.
        config: fitted fields of :class:`StatisticalUserConfig` to override, e.g.
            ``{"leave_base": -2.0}``.
        device: torch device of the simulator.
        kernel: how a step runs (``"auto"``, ``"c"`` or ``"torch"``, see
            :class:`~recoworld.simulators.statistical.StatisticalUsers`).
    """
    from recoworld.simulators.statistical import StatisticalUsers

    world = load_world(path)
    users = world.population(as_spec(population))
    users.check_catalog(catalog)
    return StatisticalUsers(catalog, calibrated_config(path, **dict(config or {})), users, device=device,
                            kernel=kernel)


#: The columns of the fitted users' table that :meth:`CalibratedPopulation.traits` reads.
TRAIT_COLUMNS = ("patience", "novelty", "activity", "popularity_bias", "conformity", "rating_bias")


def _check_interest(interest: torch.Tensor, users: pd.DataFrame) -> None:
    """:class:`~recoworld.simulators.population.FittedUsersError` naming the first user whose
    interest vector holds a NaN or an infinite value (the click utility is its inner product
    with the items' features: NaN for that user's every item)."""
    # reshape cannot size a row from no elements (no users, or vectors of length 0): nothing to check then.
    finite = torch.isfinite(interest).reshape(len(interest), -1).all(1) if interest.numel() else \
        torch.ones(len(interest), dtype=torch.bool)
    if not bool(finite.all()):
        row = int((~finite).nonzero()[0])
        who = f"row {row}" + (f" (user_id {users['user_id'].iloc[row]})" if "user_id" in users.columns else "")
        problem = (f"the fitted users' interest, {who}: {interest[row].tolist()[:4]}... holds a NaN or an infinite "
                   "value, which makes every click utility of that user NaN")
        raise FittedUsersError(f"{problem}; correct the row, or drop the user from the table and the interest alike",
                               problem)


class CalibratedPopulation(Population):
    """Fitted MovieLens users, drawn by key.

    A key always gives the same user: the user is the key's uniform draw
    (stream :data:`S_CALIBRATED`) mapped through the cumulative weights of the eligible
    users. Without a spec every fitted user is equally likely.

    Args:
        users: the fitted users' table (:attr:`CalibratedWorld.users`).
        interest: ``[n_users, D]`` their interest vectors.
        spec: which users to draw and how often (module docstring).

    The traits are read from ``users`` once, when the population is made.
    """

    def __init__(self, users: pd.DataFrame, interest: torch.Tensor, spec: Mapping | None = None):
        if len(users) != len(interest):
            raise ValueError(f"{len(users)} users but {len(interest)} interest vectors")
        if len(users) == 0:  # else the first draw fails in the cumulative weights, unnamed
            raise ValueError("the fitted users' table has no rows, and a population draws its users from them; give "
                             "a table of at least one fitted user")
        # Before the float32 tensors below: a text cell or a huge trait is named there, not by numpy.
        check_fitted_traits(users)
        _check_interest(interest, users)
        self.all_users = users.reset_index(drop=True)
        self.interest = interest
        # The traits as tensors, read once: every reset of the users (the calibration's
        # simulated runs reset thousands of times) indexes them rather than the table.
        self._traits = {name: torch.tensor(self.all_users[name].to_numpy(dtype=np.float32))
                        for name in TRAIT_COLUMNS if name in self.all_users}
        if "user_id" in self.all_users:
            self._traits["user_id"] = torch.tensor(self.all_users["user_id"].to_numpy(), dtype=torch.int64)
        self.spec = as_spec(spec)
        eligible, weight = select(self.all_users, self.spec)
        self.index = torch.as_tensor(np.flatnonzero(eligible), dtype=torch.long)
        w = torch.as_tensor(weight[eligible], dtype=torch.float64)
        self._cumulative = torch.cumsum(w / w.sum(), 0)

    @property
    def users(self) -> pd.DataFrame:
        """The eligible users, with their sampling probability in column ``weight``."""
        table = self.all_users.iloc[self.index.numpy()].copy()
        table["weight"] = torch.diff(self._cumulative, prepend=torch.zeros(1, dtype=torch.float64)).numpy()
        return table

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, spec: Mapping) -> CalibratedPopulation:
        """This population further restricted by ``spec`` (conditions on the same column replace earlier ones)."""
        return CalibratedPopulation(self.all_users, self.interest, {**self.spec, **as_spec(spec)})

    def rows(self, keys: torch.Tensor) -> torch.Tensor:
        """Row of :attr:`all_users` drawn for each key."""
        u = rng.uniform(keys, torch.zeros_like(keys), S_CALIBRATED, 1)[:, 0].double().cpu()
        at = torch.searchsorted(self._cumulative, u).clamp_max(len(self.index) - 1)
        return self.index[at]

    def sample(self, keys: torch.Tensor, catalog: Catalog) -> CalibratedTraits:
        self.check_catalog(catalog)
        return self.traits(self.rows(keys), keys.device)

    def check_catalog(self, catalog: Catalog) -> None:
        """Raise ``ValueError`` unless ``catalog``'s features live in the interests' space."""
        if catalog.feature_dim != self.interest.shape[1]:
            raise ValueError(
                f"the calibrated users' interests have {self.interest.shape[1]} dimensions but the catalog "
                f"'{catalog.name}' has {catalog.feature_dim}-dimensional features; use the catalog that "
                "load_calibrated_world() returns with them")

    def traits(self, rows, device: str | torch.device = "cpu") -> CalibratedTraits:
        """Traits of the users at ``rows`` of :attr:`all_users`."""
        rows = torch.as_tensor(rows, dtype=torch.long).cpu()

        def column(name: str) -> torch.Tensor:
            if name not in self._traits:
                raise KeyError(name)  # as the table itself would: a users' table without the column
            return self._traits[name][rows].to(device)

        return CalibratedTraits(
            interest=self.interest[rows].to(device),
            patience=column("patience"),
            novelty_trait=column("novelty"),
            activity=column("activity"),
            popularity_bias=column("popularity_bias"),
            source_user=column("user_id"),
            conformity=column("conformity"),
            rating_bias=column("rating_bias"),
        )

    def pinned(self, rows: Sequence[int], seeds: Sequence[int]) -> PinnedPopulation:
        """A population in which the user seeded ``seeds[j]`` is the fitted user at ``rows[j]``.

        For evaluations that need each fitted user exactly once: reset a simulator with
        ``seed=seeds`` and slot ``j`` holds user ``rows[j]``.
        """
        return PinnedPopulation(self, rows, seeds)


class PinnedPopulation(Population):
    """Given seeds mapped to given fitted users (see :meth:`CalibratedPopulation.pinned`)."""

    def __init__(self, base: CalibratedPopulation, rows: Sequence[int], seeds: Sequence[int]):
        given = torch.as_tensor(rows.cpu() if isinstance(rows, torch.Tensor) else np.array(rows)).flatten()
        if len(given) == 0:
            raise ValueError("no rows to pin; give at least one row of the fitted users' table")
        # A float row would be cut to an integer and a negative one would count from the end: refused, not
        # read as some other user.
        if given.is_floating_point() or given.is_complex() or given.dtype == torch.bool:
            raise ValueError(f"rows must be integer rows of the fitted users' table; got {given.tolist()[:5]}")
        rows = given.to(torch.long)
        n = len(base.all_users)
        outside = ((rows < 0) | (rows >= n)).nonzero().flatten()
        if len(outside):
            j = int(outside[0])
            raise ValueError(f"rows[{j}] is {int(rows[j])}, but the calibrated world has {n} fitted users "
                             f"(rows 0..{n - 1})")
        left_out = (~torch.isin(rows, base.index)).nonzero().flatten()
        if len(left_out):
            j = int(left_out[0])
            raise ValueError(f"rows[{j}] is {int(rows[j])}, a user the population spec {base.spec} leaves out; "
                             "pin rows of its users (population.users.index), or pin from world.population()")
        keys = rng.user_keys(torch.as_tensor(seeds, dtype=torch.int64).flatten())
        if len(rows) != len(keys):
            raise ValueError(f"{len(rows)} rows for {len(keys)} seeds; give one seed per row")
        order = torch.argsort(keys)
        self._keys, self._rows = keys[order], rows[order]
        repeated = (self._keys[1:] == self._keys[:-1]).nonzero().flatten()
        if len(repeated):  # user keys are a bijection of the seeds: only a repeated seed collides
            seed = torch.as_tensor(seeds, dtype=torch.int64).flatten()[order][int(repeated[0])]
            raise ValueError(f"seed {int(seed)} is given twice; give each row a seed of its own")
        self.base = base

    def sample(self, keys: torch.Tensor, catalog: Catalog) -> CalibratedTraits:
        at = torch.searchsorted(self._keys, keys.cpu()).clamp_max(len(self._keys) - 1)
        if not bool((self._keys[at] == keys.cpu()).all()):
            raise ValueError("a user was started with a seed this pinned population was not given")
        self.base.check_catalog(catalog)
        return self.base.traits(self._rows[at], keys.device)
