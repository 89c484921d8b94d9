"""Include folders that mmcv's CUDA ops need on this machine and may not find, for ``CPATH``.

    CPATH=$(python tools/gpu_check/mmcv_build.py include-path COMPAT_DIR) pip wheel mmcv-...tar.gz

mmcv 2.1.0's CUDA sources include ``THC/THCAtomics.cuh``, a one-line shim of
``ATen/cuda/Atomic.cuh`` that PyTorch's CUDA builds still ship; a torch without it gets the same
shim written into ``COMPAT_DIR/THC``. torch's ``ATen/cuda/CUDAContext.h`` includes the CUDA
math-library headers (``cusparse.h``, ``cublas_v2.h``, ``cublasLt.h``, ``cusolverDn.h``); a CUDA
toolkit assembled from pip packages may lack them, while pip's ``nvidia-*`` packages next to
torch have them: their folders are added. Prints the folders joined by ``:`` (empty when nothing
is missing).
"""
import glob
import os
import os.path as osp
import sys
from typing import List

#: the headers ``ATen/cuda/CUDAContextLight.h`` includes besides the CUDA runtime's
CUDA_MATH_HEADERS = ('cusparse.h', 'cublas_v2.h', 'cublasLt.h', 'cusolverDn.h')
THC_SHIM = '#pragma once\n#include <ATen/cuda/Atomic.cuh>\n'


def thc_shim(compat_dir: str) -> List[str]:
    """``[compat_dir]`` after writing the THC shim there, when torch's headers lack it."""
    from torch.utils.cpp_extension import include_paths
    if any(osp.isfile(osp.join(d, 'THC', 'THCAtomics.cuh')) for d in include_paths()):
        return []
    os.makedirs(osp.join(compat_dir, 'THC'), exist_ok=True)
    with open(osp.join(compat_dir, 'THC', 'THCAtomics.cuh'), 'w') as f:
        f.write(THC_SHIM)
    return [compat_dir]


def cuda_math_headers(cuda_home: str = None, package_roots: List[str] = None) -> List[str]:
    """Folders of pip's nvidia packages holding the math headers the CUDA toolkit lacks."""
    if cuda_home is None:
        from torch.utils.cpp_extension import CUDA_HOME
        cuda_home = CUDA_HOME
    toolkit = []
    if cuda_home:
        toolkit = [osp.join(cuda_home, 'include')]
        toolkit += glob.glob(osp.join(cuda_home, 'targets', '*', 'include'))
    missing = [h for h in CUDA_MATH_HEADERS
               if not any(osp.isfile(osp.join(d, h)) for d in toolkit)]
    if package_roots is None:
        try:
            import nvidia
            package_roots = list(nvidia.__path__)
        except ImportError:
            package_roots = []
    folders = []
    for root in package_roots:
        for header in missing:
            for found in sorted(glob.glob(osp.join(root, '**', 'include', header),
                                          recursive=True)):
                if osp.dirname(found) not in folders:
                    folders.append(osp.dirname(found))
    return folders


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != 'include-path':
        print(__doc__, file=sys.stderr)
        return 2
    print(':'.join(thc_shim(argv[1]) + cuda_math_headers()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
