"""What ``tools/gpu_check.sh`` needs to know about the machine, as shell assignments.

    eval "$(python tools/gpu_check/machine.py)"

sets ``gpu`` (1 when torch sees a CUDA GPU), ``bf16`` (1 when that GPU computes in bfloat16),
``arch`` (its compute capability, e.g. ``9.0``: the ``TORCH_CUDA_ARCH_LIST`` to build for),
``has_numpy`` and ``has_cv2`` (1 when they import), ``build_key`` (torch, CUDA and Python versions:
what a compiled mmcv wheel is tied to) and ``machine`` (one line for the summary).
"""
import importlib.util
import os
import platform
import shlex
import sys


def facts() -> dict:
    import torch
    gpu = torch.cuda.is_available()
    out = dict(gpu=int(gpu), bf16=0, arch='',
               has_numpy=int(importlib.util.find_spec('numpy') is not None),
               has_cv2=int(importlib.util.find_spec('cv2') is not None))
    line = [f'python {platform.python_version()}', f'torch {torch.__version__}']
    if out['has_numpy']:
        import numpy
        line.append(f'numpy {numpy.__version__}')
    else:
        line.append('no numpy (numpy<2 is installed)')
    if gpu:
        major, minor = torch.cuda.get_device_capability()
        out.update(bf16=int(torch.cuda.is_bf16_supported()), arch=f'{major}.{minor}')
        line = [f'{torch.cuda.get_device_name()} (sm_{major}{minor})', *line,
                f'CUDA {torch.version.cuda}']
    else:
        line.insert(0, 'no CUDA GPU visible to torch')
    line.append(f'{os.cpu_count()} CPU cores')
    out['build_key'] = (f'torch{torch.__version__}-cuda{torch.version.cuda}-'
                        f'py{sys.version_info[0]}{sys.version_info[1]}').replace('+', '_')
    out['machine'] = ', '.join(line)
    return out


if __name__ == '__main__':
    print('\n'.join(f'{k}={shlex.quote(str(v))}' for k, v in facts().items()))
