"""Every rank leaves the process group medlens started before it exits: a gloo group alive at
interpreter exit can abort a finished torchrun job ("terminate called without an active
exception", pytorch/pytorch#190489). A group the caller started is the caller's to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

from medlens.config import parse_config
from medlens.train.distributed import init_distributed, shutdown

_INIT_PROCESS_GROUP = dist.init_process_group


def _join_alone(tmp_path: Path) -> None:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    _INIT_PROCESS_GROUP("gloo", store=store, rank=0, world_size=1)


def _join_as_torchrun_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``init_distributed`` under a torchrun environment, its group a one-process gloo group
    (a real two-rank group would need a second process)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: _join_alone(tmp_path))
    init_distributed()
    monkeypatch.undo()


def test_shutdown_leaves_the_group_medlens_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutdown()  # no group: nothing to do
    _join_as_torchrun_would(tmp_path, monkeypatch)
    assert dist.is_initialized()
    shutdown()
    assert not dist.is_initialized()


@pytest.mark.parametrize("world_size", ["1", "2"])
def test_a_group_the_caller_started_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world_size: str
) -> None:
    """With or without a torchrun environment, a group that exists before medlens is called
    is used (never started again) and outlives medlens's shutdown."""
    _join_alone(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", world_size)
    try:
        assert init_distributed().world_size == 1  # the caller's one-process group
        shutdown()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_train_and_report_leaves_the_group_even_when_the_run_fails(
    tmp_path: Path, tiny_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlens.commands import train as train_command

    def failing_run(config: Any, **kwargs: Any) -> None:
        _join_as_torchrun_would(tmp_path, monkeypatch)
        raise RuntimeError("the run failed")

    monkeypatch.setattr(train_command, "run_module", lambda config: failing_run)
    with pytest.raises(RuntimeError, match="the run failed"):
        train_command.train_and_report(parse_config(tiny_config))
    assert not dist.is_initialized()
