"""On a CUDA machine (``./test.sh -m gpu``): training really runs on the GPU with mixed
precision and channels-last. Skipped everywhere else."""
from __future__ import annotations

import pytest
import torch

from seglib.data.demo import write_demo
from seglib.train import Callback, RunFolder, TrainConfig, train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_training_runs_on_cuda_with_mixed_precision(tmp_path):
    data = tmp_path / "demo.npz"
    write_demo(data, n=200, seed=0, n_test=0)
    seen = {}

    class Watch(Callback):
        def on_validation_batch(self, images, masks, predictions, ids):
            seen["preview"] = images.shape

    result = train(TrainConfig(data=str(data), epochs=2, batch_size=32, patience=0), run_dir=tmp_path / "run",
                   callbacks=[Watch()])
    resolved = RunFolder(tmp_path / "run").read_config()["resolved"]
    assert resolved["device"].startswith("cuda")
    assert resolved["amp"] in ("bfloat16", "float16")
    assert result["status"] == "done" and result["val"]["miou"] > 0
    assert seen["preview"][0] > 0
    assert RunFolder(tmp_path / "run").read_history()[-1]["images_per_s"] > 100
