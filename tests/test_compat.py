"""The torch-2.x shims of mmkd/compat.py, each checked where it matters."""
import os
import pickle
import re

import pytest
import torch

import mmkd  # noqa: F401
from mmkd import compat


def test_mmrazor_engine_imports_and_single_teacher_distill_builds():
    import mmrazor.engine  # noqa: F401  (fails on torch >= 2.0 without the stand-in)
    from mmrazor.registry import MODELS
    # a minimal mmdet student/teacher pair built through mmrazor's own algorithm
    det = dict(
        _scope_='mmdet',
        type='RetinaNet',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(1, 2, 3)),
        neck=dict(type='FPN', in_channels=[128, 256, 512], out_channels=16, num_outs=3),
        bbox_head=dict(
            type='RetinaHead', num_classes=3, in_channels=16, feat_channels=16,
            stacked_convs=1,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=1, ratios=[1.0], strides=[8, 16, 32]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder'),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True),
            loss_bbox=dict(type='L1Loss')))
    algo = MODELS.build(
        dict(type='mmrazor.SingleTeacherDistill', architecture=det, teacher=det,
             distiller=dict(
                 # mmrazor's names with their scope: other tests leave 'mmdet' as the default
                 type='mmrazor.ConfigurableDistiller',
                 student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
                 teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
                 distill_losses=dict(loss_pkd=dict(type='mmkd.PKDLoss')),
                 loss_forward_mappings=dict(loss_pkd=dict(
                     preds_S=dict(from_student=True, recorder='fpn', data_idx=0),
                     preds_T=dict(from_student=False, recorder='fpn', data_idx=0))))))
    assert type(algo).__name__ == 'SingleTeacherDistill'
    assert type(algo.distiller.distill_losses['loss_pkd']).__module__ == 'mmkd.models.losses.pkd'


def test_mmrazor_quantization_raises_a_clear_error():
    from mmrazor.structures.quantization import BackendConfigs, get_native_backend_config
    if not compat.QUANTIZATION_STUBBED:
        pytest.skip('this torch still has the names mmrazor quantization needs')
    with pytest.raises(compat.MMRazorQuantizationUnavailable, match=re.escape(torch.__version__)):
        BackendConfigs['native']
    with pytest.raises(compat.MMRazorQuantizationUnavailable, match='#615'):
        get_native_backend_config()


def _mmengine_like_checkpoint(path):
    """What mmengine's CheckpointHook writes: HistoryBuffers, numpy scalars and arrays."""
    import numpy as np
    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('compat-test')
    for i in range(3):
        hub.update_scalar('train/loss', float(i))
    hub.update_info('iter', np.int64(7))
    ckpt = dict(
        meta=dict(epoch=1, iter=7, seed=np.int64(3), dataset_meta=dict(classes=('a', 'b'))),
        state_dict=dict(w=torch.ones(2)),
        message_hub=hub.state_dict(),
        extra=dict(buffer=HistoryBuffer([1.0, 2.0], [1, 1]), array=np.arange(3, dtype=np.float32),
                   dtype=np.dtype('float32')))
    torch.save(ckpt, path)


def test_mmengine_checkpoints_load_with_weights_only(tmp_path):
    path = str(tmp_path / 'ok.pth')
    _mmengine_like_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # explicit: the allow-list, not a switch-off
    assert ckpt['meta']['iter'] == 7
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 2.0
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(path, map_location='cpu')['meta']['epoch'] == 1


class _Exploit:
    """A pickle that runs a command when loaded."""

    def __reduce__(self):
        return (os.system, ('touch /tmp/mmkd-pwned',))


def test_checkpoint_with_a_malicious_pickle_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(1)), meta=dict(payload=_Exploit())), path)
    if os.path.exists('/tmp/mmkd-pwned'):
        os.remove('/tmp/mmkd-pwned')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(path, map_location='cpu')  # the path mmengine's resume takes
    assert not os.path.exists('/tmp/mmkd-pwned')


class _GetattrExploit:
    """Asks getattr, the global HistoryBuffer checkpoints need, for something else."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


def test_getattr_in_checkpoints_is_limited_to_history_buffer(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer
    for owner, name in ((HistoryBuffer, '__reduce_ex__'),
                        (HistoryBuffer, '_set_default_statistics'), (np.ndarray, 'tofile')):
        path = str(tmp_path / 'evil_getattr.pth')
        torch.save(dict(meta=dict(payload=_GetattrExploit(owner, name))), path)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
    # what mmengine itself writes still loads
    path = str(tmp_path / 'fine.pth')
    torch.save(dict(meta=dict(method=_GetattrExploit(HistoryBuffer, 'mean'))), path)
    assert torch.load(path)['meta']['method'] is HistoryBuffer.mean
