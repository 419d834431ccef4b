"""Every rank leaves the process group before it exits: a gloo group alive at interpreter exit
can abort a finished torchrun job ("terminate called without an active exception",
pytorch/pytorch#190489)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from medlens.config import parse_config
from medlens.train.distributed import shutdown


def _join_alone(tmp_path: Path) -> None:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)


def test_shutdown_leaves_the_group_and_is_harmless_without_one(tmp_path: Path) -> None:
    shutdown()  # no group: nothing to do
    _join_alone(tmp_path)
    assert dist.is_initialized()
    shutdown()
    assert not dist.is_initialized()


def test_train_and_report_leaves_the_group_even_when_the_run_fails(
    tmp_path: Path, tiny_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlens.commands import train as train_command

    def failing_run(config, **kwargs):  # type: ignore[no-untyped-def]
        _join_alone(tmp_path)
        raise RuntimeError("the run failed")

    monkeypatch.setattr(train_command, "run_module", lambda config: failing_run)
    with pytest.raises(RuntimeError, match="the run failed"):
        train_command.train_and_report(parse_config(tiny_config))
    assert not dist.is_initialized()
