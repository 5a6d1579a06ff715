"""Two gloo ranks evaluate a 101-sample set through a padding DistributedSampler."""
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fer_bench.metrics import FERMetrics  # noqa: E402

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def data(n: int = 101):
    rng = np.random.default_rng(7)
    target = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7)).astype(np.float32)
    logits[np.arange(n), target] += rng.normal(0.8, 1.0, n).astype(np.float32)  # some signal
    logits[:, 1] -= 100.0  # class "disgust" is never predicted: recall 0, not dropped
    # the padded duplicates are the first samples: make them wrong so counting them twice shows
    logits[:2, target[:2]] -= 100.0
    return logits, target


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    logits, target = data()
    sampler = DistributedSampler(range(len(target)), num_replicas=world, rank=rank, shuffle=False)
    idx = torch.tensor(list(iter(sampler)))
    exact, naive = FERMetrics(CLASSES), FERMetrics(CLASSES)
    for chunk in idx.split(16):
        exact.update(torch.from_numpy(logits[chunk.numpy()]), torch.from_numpy(target[chunk.numpy()]), chunk)
        # "naive": every sample gets a fresh index, as if duplicates were distinct samples
        naive.update(torch.from_numpy(logits[chunk.numpy()]), torch.from_numpy(target[chunk.numpy()]),
                     chunk + 1000 * (rank + 1))
    s, sn = exact.compute(), naive.compute()
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"exact": s.as_dict(), "naive": sn.as_dict(), "per_rank": len(idx)}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    port, out = int(sys.argv[1]), sys.argv[2]
    mp.spawn(worker, args=(2, port, out), nprocs=2, join=True)
