import pytest
import torch
from torch import nn

from train.syncbn import SyncBatchNorm2d, convert


def test_without_a_process_group_it_is_plain_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * 2 + 1
    plain, sync = nn.BatchNorm2d(3), SyncBatchNorm2d(3)
    assert torch.equal(sync(x), plain(x))
    assert torch.equal(sync.running_var, plain.running_var) and sync.num_batches_tracked == 1
    plain.eval(), sync.eval()
    assert torch.equal(sync(x), plain(x))


def test_convert_keeps_parameters_buffers_and_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    before = model.state_dict()
    weight = model[1][0].weight
    assert convert(model, torch.device("cpu")) is model
    assert type(model[1][0]) is SyncBatchNorm2d and model[1][0].weight is weight  # optimisers stay valid
    assert list(model.state_dict()) == list(before)
    with pytest.raises(ValueError, match="affine"):
        convert(nn.Sequential(nn.BatchNorm2d(4, affine=False)), torch.device("cpu"))
