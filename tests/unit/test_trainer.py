"""The trainer factory and KeepBest: the best validated epoch's weights come back; a log gets a line per epoch."""

from __future__ import annotations

import io
import logging
import sys

import lightning as L
import pytest
import torch

from training.trainer import KeepBest, make_trainer

SCRIPT = [3.0, 1.0, 2.0, 1.5]  # the "validation metric" of epochs 1..4: epoch 2 is the best (lowest)


class Scripted(L.LightningModule):
    """Trains a linear net; its validation metric is read from SCRIPT, so the best epoch is known in advance."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)
        self.seen: dict[int, dict[str, torch.Tensor]] = {}  # weights after each epoch's training

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        loss = self.net(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.seen[self.current_epoch + 1] = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.log("val/metric", SCRIPT[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _data() -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(32, 2)), batch_size=8)


@pytest.mark.parametrize(("mode", "best"), [("min", 2), ("max", 1)])
def test_keep_best_restores_the_best_epochs_weights(mode: str, best: int) -> None:
    module, keep = Scripted(), KeepBest("val/metric", mode=mode)
    make_trainer(len(SCRIPT), "scripted", [keep]).fit(module, _data(), _data())
    assert (keep.best_epoch, keep.epochs) == (best, len(SCRIPT))
    assert keep.best_score == SCRIPT[best - 1]
    for k, v in module.net.state_dict().items():
        assert torch.equal(v, module.seen[best][k]), k  # not the last epoch's weights
    assert not torch.equal(module.net.weight, module.seen[len(SCRIPT)]["weight"])


def test_a_log_gets_a_line_per_epoch_and_the_kept_epoch(caplog, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal (also under `pytest -s`)
    with caplog.at_level(logging.INFO, logger="training.trainer"):
        make_trainer(len(SCRIPT), "scripted", [KeepBest("val/metric")]).fit(Scripted(), _data(), _data())
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("training.trainer")]
    assert [line.split(" (")[0] for line in lines[:-1]] == [f"scripted epoch {e}/4" for e in range(1, 5)]
    assert "train/loss" in lines[0] and "val/metric 3" in lines[0]
    assert lines[-1] == "scripted: kept epoch 2 (val/metric 1)"
