"""The experiment registry: every folder of experiments/ with a config.json is an
experiment, named after the folder. Adding an experiment = adding a folder::

    experiments/<name>/config.json     required: the config (see experiments/README.md)
    experiments/<name>/README.md       what it measures and how to read it
    experiments/<name>/experiment.py   optional: the experiment's own code

``experiment.py`` is loaded by path (importlib; folder names need not be Python
identifiers, e.g. ``always-vs-rare``) as module ``handofflab_experiments.<name>``
and may define:

- ``Runner``: a subclass of handofflab.runner.Runner that runs this experiment
  (its own steps(), run_mode(), measure() ...); default: the generic Runner;
- ``plot(rd: ResultsDir) -> list[Path]``: its plots, instead of the generic ones
  chosen by the config's ``plot`` spec (``./lab plot`` calls it too).

This module imports nothing of handofflab beyond handofflab.results (for the
repository root), so every module may use it without an import cycle.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

from .results import REPO_ROOT

log = logging.getLogger(__name__)

# HANDOFFLAB_EXPERIMENTS: another experiments folder (default: the repository's)
EXPERIMENTS_DIR = Path(os.environ.get("HANDOFFLAB_EXPERIMENTS", REPO_ROOT / "experiments"))
CONFIG = "config.json"
HOOK = "experiment.py"
HOOK_PACKAGE = "handofflab_experiments"  # the loaded hooks' module names: <this>.<name>


def discover(root: Optional[Path] = None) -> dict[str, Path]:
    """{experiment name: its folder} for every root/<name>/config.json, sorted by
    name (root: default EXPERIMENTS_DIR, read at call time)."""
    base = EXPERIMENTS_DIR if root is None else root
    return {cfg.parent.name: cfg.parent for cfg in sorted(base.glob(f"*/{CONFIG}"))}


def descriptions(root: Optional[Path] = None) -> dict[str, str]:
    """{experiment name: one-line description (the config's ``description``)}."""
    return {name: json.loads((folder / CONFIG).read_text()).get("description", "")
            for name, folder in discover(root).items()}


def module_name(name: str) -> str:
    """The module name a folder's experiment.py is loaded as."""
    return f"{HOOK_PACKAGE}.{re.sub(r'[^0-9A-Za-z_]', '_', name)}"


def hook(name: str, root: Optional[Path] = None) -> Optional[ModuleType]:
    """Experiment ``name``'s experiment.py as a module (loaded once per path), or
    None when its folder has none. Raises KeyError for an unknown experiment."""
    folder = discover(root).get(name)
    if folder is None:
        raise KeyError(f"no experiment {name!r}; experiments: {', '.join(discover(root))}")
    path = folder / HOOK
    if not path.is_file():
        return None
    mod_name = module_name(name)
    loaded = sys.modules.get(mod_name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    log.debug("experiment %s: loaded %s", name, path)
    return module


def hook_attr(name: str, attr: str, root: Optional[Path] = None) -> Any:
    """An attribute of experiment ``name``'s experiment.py, or None (no file, no
    such attribute, or no such experiment folder: results may outlive one)."""
    try:
        module = hook(name, root)
    except KeyError:
        return None
    return getattr(module, attr, None) if module is not None else None
