"""Cheap baselines from scratch, as arms of a comparison: no network, no pretraining.

    compare(config, arms=("finetune", "scratch", "pixels"))      # images
    compare(config, arms=("finetune", "scratch", "tfidf"))       # text

- "pixels": logistic regression on the raw pixels (scaled to 0..1).
- "tfidf": logistic regression on TF-IDF word and word-pair features of the texts, fitted on the
  training texts only.

A `BaselineRun` is fitted once, on the same training examples as the networks, and measured on
the same validation and test splits; it emits the same records (a train, a val and a test record,
at the end of the comparison's budget), so tables, curves and the verdict treat it as one more arm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .arm_run import ArmRun, arm_row
from .callbacks import Callback, Record
from .config import Arm, ExperimentConfig, Plan, plan
from .splits import ExperimentData

__all__ = ["BASELINES", "BaselineRun", "fit_linear", "linear_model"]

BASELINES = {"pixels": "image", "tfidf": "text"}  # each baseline and the data it reads


def linear_model():
    """The one rule for every linear model in a comparison (pixels, TF-IDF, the probe's head):
    multinomial logistic regression, L2 penalty C = 1, fitted by L-BFGS to convergence."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, C=1.0)


def fit_linear(x: np.ndarray, y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """`linear_model()` fitted to features `x` (N, F) and labels `y`, as the weight (classes, F)
    and bias (classes,) of a linear layer whose logits give the same predictions."""
    model = linear_model().fit(x, y)
    weight = np.zeros((num_classes, x.shape[1]))
    bias = np.full(num_classes, -1e4)  # a class with no training example is never predicted
    if len(model.classes_) == 2:  # scikit-learn keeps one row: the logit of the second class against the first
        weight[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        bias[model.classes_[0]] = 0.0
    else:
        weight[model.classes_], bias[model.classes_] = model.coef_, model.intercept_
    return weight, bias


class BaselineRun(ArmRun):
    """A cheap baseline fitted on an experiment's training examples, with `Run`'s interface."""

    # ArmRun's constructor, the same for every kind of arm: `compare` builds them all alike.
    def __init__(
        self,
        config: ExperimentConfig,
        arm: Arm,
        data: ExperimentData,
        device: torch.device,
        callbacks: Sequence[Callback] = (),
    ):
        modality = data.dataset.modality
        if BASELINES.get(arm.name) != modality:
            fits = [name for name, m in BASELINES.items() if m == modality]
            raise ConfigError(f"the {arm.name} baseline does not apply to {modality} data; use {', '.join(fits)}")
        super().__init__(config, arm, data, device, callbacks)
        self.plan: Plan = plan(config, len(data.train_labels))
        self.k = 0
        self.step = self.images_seen = 0
        self.seconds = 0.0
        self.val_predictions: torch.Tensor | None = None
        self.test_predictions: torch.Tensor | None = None
        self.test_accuracy = self.test_loss = self.val_accuracy = float("nan")

    def describe(self) -> str:
        what = "raw pixels" if self.arm.name == "pixels" else "TF-IDF word and word-pair features"
        return f"{self.arm.name:<9} logistic regression on {what} of {len(self.data.train_labels):,} training examples"

    def _inputs(self) -> dict[str, object]:
        """Each split as the model's input: flat pixel rows, or the texts."""
        d = self.data
        if self.arm.name == "pixels":
            return {s: getattr(d, f"{s}_images").reshape(len(getattr(d, f"{s}_labels")), -1).float().cpu().numpy() / 255
                    for s in ("train", "val", "test")}  # fmt: skip
        texts = {"train": d.dataset.train_texts, "val": d.dataset.train_texts, "test": d.dataset.test_texts}
        return {s: [texts[s][i] for i in d.rows[s].tolist()] for s in ("train", "val", "test")}

    def _model(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        classifier = linear_model()
        if self.arm.name == "pixels":
            return classifier
        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), classifier)

    def _emit(self, split: str, loss: float, accuracy: float) -> None:
        # Fitted in one go, it takes no optimiser steps; it is measured where the budget ends.
        record = Record(self.arm.name, round(self.plan.epochs, 3), self.plan.steps, split, float(loss),
                        float(accuracy), self.images_seen, round(self.seconds, 4))  # fmt: skip
        for cb in self.callbacks:
            cb.on_record(self, record)

    def _measure(self, model, x, labels: torch.Tensor) -> tuple[float, float, np.ndarray]:
        """(log loss, accuracy, predictions) of the fitted model on one split."""
        y = labels.cpu().numpy()
        proba = np.zeros((len(y), self.data.dataset.num_classes))
        proba[:, model.classes_] = model.predict_proba(x)  # a class absent from training scores 0
        preds = proba.argmax(1)
        loss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
        return loss, float((preds == y).mean()), preds

    def rounds(self) -> Iterator[int]:
        """Fit once, emit the train, val and test records at the end of the budget, yield once.
        `seconds` counts only this baseline's own work, as for `Run`."""
        started = time.perf_counter()
        try:
            for cb in self.callbacks:
                cb.on_run_start(self)
                cb.check_stop(self)
            x, model = self._inputs(), self._model()
            model.fit(x["train"], self.data.train_labels.cpu().numpy())
            self.images_seen = len(self.data.train_labels)
            self._emit("train", *self._measure(model, x["train"], self.data.train_labels)[:2])
            if len(self.data.val_labels):
                loss, self.val_accuracy, preds = self._measure(model, x["val"], self.data.val_labels)
                self.val_predictions = torch.from_numpy(preds)
                self.seconds = time.perf_counter() - started
                self._emit("val", loss, self.val_accuracy)
            self.seconds = time.perf_counter() - started
            yield self.step
            started = time.perf_counter()
            self.test_loss, self.test_accuracy, preds = self._measure(model, x["test"], self.data.test_labels)
            self.test_predictions = torch.from_numpy(preds)
            self.seconds += time.perf_counter() - started
            self._emit("test", self.test_loss, self.test_accuracy)
        finally:
            for cb in self.callbacks:
                cb.on_run_end(self)

    def row(self) -> dict:
        """This baseline's line in a result table (the network-only columns say there is none)."""
        return arm_row(self, device="CPU (scikit-learn)")
