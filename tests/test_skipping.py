from types import SimpleNamespace

import pytest
import torch

from fer_bench.callbacks import SkippedFiles, TooManyUnreadable
from fer_bench.data.base import SplitDataset, collate_skipping
from fer_bench.errors import UnreadableSample


class HalfBroken(torch.utils.data.Dataset):
    labels = [0, 1, 0, 1]

    def __len__(self):
        return 4

    def __getitem__(self, i):
        if i == 2:
            raise UnreadableSample(f"/data/img{i}.jpg", "not a decodable image")
        return torch.full((1, 2, 2), i, dtype=torch.uint8), self.labels[i]


def test_unreadable_sample_is_dropped_from_the_batch_and_named():
    ds = SplitDataset(HalfBroken(), [0, 1, 2, 3])
    x, y, idx, skipped = collate_skipping([ds[i] for i in range(4)])
    assert x.shape == (3, 1, 2, 2) and idx.tolist() == [0, 1, 3] and y.tolist() == [0, 1, 1]
    assert skipped == ["/data/img2.jpg (not a decodable image)"]
    assert collate_skipping([ds[2]])[0] is None  # a batch of only bad samples is skipped whole


def _trainer(n: int):
    return SimpleNamespace(datamodule=SimpleNamespace(splits={"test": list(range(n))}))


def test_more_than_one_percent_unreadable_stops_the_run_naming_files():
    cb = SkippedFiles(0.01)
    cb.on_test_batch_end(None, None, None, (None, None, None, ["/d/a.jpg (empty)"]), 0)
    cb._check(_trainer(100), "test")  # 1 of 100 = 1 %: tolerated
    cb.on_test_batch_end(None, None, None, (None, None, None, ["/d/b.jpg (empty)"]), 1)
    with pytest.raises(TooManyUnreadable) as e:
        cb._check(_trainer(100), "test")  # 2 of 100 > 1 %
    assert "2 of 100 test samples" in str(e.value) and "/d/a.jpg" in str(e.value) and "/d/b.jpg" in str(e.value)
    assert cb.gathered() == ["/d/a.jpg (empty)", "/d/b.jpg (empty)"]
