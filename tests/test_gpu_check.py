"""tools/gpu_check.sh on a machine without a GPU: its arguments, the install from a wheel folder,
the summary table, and the helpers it calls (tools/gpu_check/*.py) as far as a CPU runs them."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys
import zipfile

import pytest
import torch
from mmengine.config import Config

from _toy import PKD_TOY, REPO

PY = sys.executable
SCRIPT = osp.join(REPO, 'tools', 'gpu_check.sh')
LD_TOY = osp.join(REPO, 'configs/toy/ld_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
pytestmark = pytest.mark.timeout(600)


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f'gpu_check_{name}', osp.join(REPO, 'tools', 'gpu_check', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


summary = _load('summary')
wheels = _load('wheels')


def run_script(*args, cwd=REPO):
    proc = subprocess.run(['bash', SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    return proc.returncode, proc.stdout + proc.stderr


# ------------------------------------------------------------------ arguments
@pytest.mark.parametrize('args, message', [
    ((), r'give --download DIR \(fill a wheel folder\) or --wheels DIR'),
    (('--download', 'a', '--wheels', 'b'), '--download and --wheels exclude each other'),
    (('--wheels', '/nonexistent/wheels'), "--wheels: no folder '/nonexistent/wheels'.*--download"),
    (('--wheels', '.', '--iters', '0'), "--iters must be a positive whole number, got '0'"),
    (('--wheels', '.', '--budget', '10m'), "--budget must be .* seconds, got '10m'"),
    (('--wheels', '.', '--have', 'x.txt'), '--have only goes with --download'),
    (('--wheels', '.', '--python-version', '3.12'), '--python-version only goes with --download'),
    (('--wheels', '.', '--python', 'no-such-python'), "--python: 'no-such-python' is not a"),
    (('--wheels',), '--wheels needs a value'),
    (('--frobnicate', ), "unknown argument '--frobnicate'"),
])
def test_bad_arguments_are_refused_with_the_fix(args, message):
    code, out = run_script(*args)
    assert code == 2, out
    assert re.search(message, out), out
    assert 'gpu_check.sh --help' in out


def test_help_describes_both_modes():
    code, out = run_script('--help')
    assert code == 0
    for text in ('--download DIR', '--wheels DIR', '--python-version', '--have', '--iters',
                 '--budget', '--install-only', 'TORCH_CUDA_ARCH_LIST', 'MAX_JOBS'):
        assert text in out, text
    assert 'set -uo' not in out


# ------------------------------------------------------------------ the install path
def _wheel(folder, name, requires=()):
    """A minimal pure-Python wheel (one module) written by hand, as pip would build it."""
    dist = f'{name.replace("-", "_")}-1.0'
    path = osp.join(folder, f'{name.replace("-", "_")}-1.0-py3-none-any.whl')
    meta = ''.join(f'Requires-Dist: {r}\n' for r in requires)
    files = {
        f'{name.replace("-", "_")}.py': f'NAME = {name!r}\n',
        f'{dist}.dist-info/METADATA': f'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{meta}',
        f'{dist}.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                   'Tag: py3-none-any\n',
    }
    files[f'{dist}.dist-info/RECORD'] = ''.join(f'{k},,\n' for k in files) + \
        f'{dist}.dist-info/RECORD,,\n'
    with zipfile.ZipFile(path, 'w') as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def test_install_from_a_wheel_folder_into_a_fresh_venv(tmp_path):
    """Offline: the stack without its dependencies, the rest resolved from the folder, in a venv
    that sees the interpreter's own packages (its torch); a missing wheel is named."""
    folder = tmp_path / 'wheels'
    folder.mkdir()
    _wheel(str(folder), 'gpucheck-stack', requires=['gpucheck-not-in-folder'])
    _wheel(str(folder), 'gpucheck-dep', requires=['gpucheck-dep2'])
    _wheel(str(folder), 'gpucheck-dep2')
    (tmp_path / 'stack.txt').write_text('gpucheck-stack==1.0\n')
    (tmp_path / 'deps.txt').write_text('gpucheck-dep\ngpucheck-missing\n')
    work = tmp_path / 'work'
    args = ('--wheels', str(folder), '--work-dir', str(work), '--python', PY,
            '--stack', str(tmp_path / 'stack.txt'), '--deps', str(tmp_path / 'deps.txt'))

    code, out = run_script(*args)
    assert code == 1, out
    assert 'install' in out and 'FAIL' in out
    assert 'no wheel for gpucheck-missing' in out and 'gpu_check.sh --download DIR' in out, out

    (tmp_path / 'deps.txt').write_text('gpucheck-dep\n')
    code, out = run_script(*args, '--install-only')
    assert code == 0, out
    assert 'installed (--install-only): the runs are skipped' in out
    assert [r['check'] for r in summary.read_records(str(work / 'results'))] == \
        ['machine', 'install', 'mmcv ops build']

    code, out = run_script(*args)
    assert code == 0, out
    table = (work / 'summary.md').read_text()
    assert '| install ' in table and 'gpucheck-stack==1.0 from' in table
    venv_py = str(work / 'venv' / 'bin' / 'python')
    probe = subprocess.run(
        [venv_py, '-c', 'import gpucheck_stack, gpucheck_dep, gpucheck_dep2, torch, sys; '
         'print(gpucheck_stack.__file__, gpucheck_dep2.__file__, torch.__file__, sys.prefix)'],
        capture_output=True, text=True, check=True).stdout.split()
    # the installed packages are in the new venv; torch is the interpreter's own
    assert all(p.startswith(str(work / 'venv')) for p in probe[:2]), probe
    assert probe[2] == torch.__file__
    assert probe[3] == str(work / 'venv')
    # no GPU here: every GPU step says so instead of running
    rows = {r['check']: r for r in summary.read_records(str(work / 'results'))}
    assert rows['machine']['status'] == 'info'
    gpu_steps = ('pkd fp16', 'pkd bf16', 'ld fp16', 'ld bf16',
                 'pkd fp16 via mmrazor SingleTeacherDistill', 'benchmark_distill')
    if not torch.cuda.is_available():
        assert 'no CUDA GPU visible to torch' in rows['machine']['result']
        for check in gpu_steps:
            assert rows[check]['status'] == 'skipped'
            assert rows[check]['result'] == 'not run: torch sees no CUDA GPU', check
        assert rows['mmcv ops build']['status'] == 'skipped'


# ------------------------------------------------------------------ the wheel folder helpers
def test_wheel_folder_names_and_pruning(tmp_path):
    assert wheels.project_of('Ordered_Set-4.1.0-py3-none-any.whl') == 'ordered-set'
    assert wheels.project_of('/x/mmcv-2.1.0.tar.gz') == 'mmcv'
    assert wheels.project_of('zope.interface-6.0.zip') == 'zope-interface'
    with pytest.raises(ValueError, match='not a wheel'):
        wheels.project_of('notes.txt')
    have = wheels.names_in('numpy==2.5.2\nPyYAML==6.0\n# a comment\n'
                           'scipy, opencv-python-headless,setuptools\n-e git+x\n')
    assert have == {'numpy', 'pyyaml', 'scipy', 'opencv-python-headless', 'setuptools'}
    req = tmp_path / 'deps.txt'
    req.write_text('# x\nsetuptools<81\nscipy\nmmdet==3.3.0  # pinned\n')
    assert wheels.pinned_names([str(req)]) == {'setuptools', 'mmdet'}

    names = ['numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.whl',
             'PyYAML-6.0.2-cp312-cp312-manylinux_2_17_x86_64.whl',
             'setuptools-80.9.0-py3-none-any.whl', 'mmdet-3.3.0-py3-none-any.whl',
             'mmcv-2.1.0.tar.gz', 'addict-2.4.0-py3-none-any.whl', 'README']
    for n in names:
        (tmp_path / n).write_text('')
    removed = wheels.prune(str(tmp_path), have | {'mmdet'}, {'setuptools', 'mmdet'})
    assert removed == ['PyYAML-6.0.2-cp312-cp312-manylinux_2_17_x86_64.whl',
                       'numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.whl']
    assert sorted(os.listdir(tmp_path)) == sorted(set(names) - set(removed) | {'deps.txt'})


# ------------------------------------------------------------------ the summary
def _records():
    return [
        dict(check='install', status='ok', result='mmengine==0.10.7 from /w'),
        dict(check='machine', status='info', result='NVIDIA H200 (sm_90)'),
        dict(check='pkd fp16', status='ok', it_s=12.5, result='300 iterations'),
        dict(check='pkd bf16', status='FAIL', it_s=11.0,
             result='non-finite losses in 2 iteration(s)'),
        dict(check='pkd via mmrazor', status='ok', it_s=10.0, result='300 iterations',
             compare_to='pkd fp16'),
        dict(check='benchmark_distill', status='timeout', result='stopped'),
        dict(check='ld bf16', status='skipped', result='not run: no bfloat16'),
    ]


def test_summary_table_rows_comparison_and_verdict(tmp_path):
    for i, r in enumerate(_records()):
        summary.write_record(str(tmp_path), r, order=i + 1)
    records = summary.read_records(str(tmp_path))
    assert [r['check'] for r in records] == [r['check'] for r in _records()]
    lines = summary.build_table(records).splitlines()
    assert lines[0].split('|')[1:-1] == [' check             ', ' status  ', ' it/s  ',
                                         ' result ']
    assert lines[1].startswith('|-------------------|---------|-------|')
    cells = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
             for line in lines[2:-1]}
    assert cells['pkd fp16'] == ['ok', '12.50', '300 iterations']
    assert cells['install'] == ['ok', '', 'mmengine==0.10.7 from /w']
    # 12.5 / 10.0 it/s
    assert cells['pkd via mmrazor'] == ['ok', '10.00',
                                        '300 iterations; pkd fp16 / this = 1.25x it/s']
    assert cells['benchmark_distill'][:2] == ['timeout', '']
    assert lines[-1] == 'FAILED: 2 check(s): pkd bf16, benchmark_distill'
    assert summary.exit_code(records) == 1

    passing = [r for r in records if r['status'] not in summary.FAILED]
    assert summary.build_table(passing).splitlines()[-1] == \
        'passed: 3 check(s); skipped: 1 (ld bf16)'
    assert summary.exit_code(passing) == 0
    assert summary.exit_code([]) == 1
    assert summary.build_table([]).splitlines()[-1] == 'no checks were recorded'


def test_summary_command_line_and_benchmark_rows(tmp_path, capsys):
    results = tmp_path / 'results'
    assert summary.main(['record', str(results), 'install', 'ok', 'from /w', '--order', '1']) == 0
    bench = tmp_path / 'bench.json'
    bench.write_text(json.dumps([dict(method='pkd', a=10.0, b=5.0, c=15.3, ratio=1.02),
                                 dict(method='fgd', a=10.0, b=5.0, c=18.0, ratio=1.2)]))
    assert summary.main(['benchmark', str(bench), str(results), '--order', '2']) == 0
    capsys.readouterr()
    assert summary.main(['table', str(results)]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith('| benchmark pkd ') and '| ok ' in line
               for line in out.splitlines()), out
    rows = {r['check']: r for r in summary.read_records(str(results))}
    assert list(rows) == ['install', 'benchmark pkd', 'benchmark fgd']
    assert rows['benchmark pkd']['status'] == 'ok'
    assert rows['benchmark pkd']['result'].startswith('c/(a+b) = 1.020 (target <= 1.10)')
    assert rows['benchmark fgd']['status'] == 'FAIL'
    with pytest.raises(ValueError, match='status must be one of'):
        summary.write_record(str(results), dict(check='x', status='good'), 9)
    with pytest.raises(SystemExit):
        summary.main(['record', str(results), 'x', 'good'])


# ------------------------------------------------------------------ the runs' helpers
amp_run = _load('amp_run')


def test_amp_run_config_is_a_short_mixed_precision_run(tmp_path):
    cfg = amp_run.build_cfg(PKD_TOY, dtype='bfloat16', iters=7, work_dir=str(tmp_path),
                            data_root=str(tmp_path / 'data'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and cfg.optim_wrapper.loss_scale == 'dynamic'
    toy = Config.fromfile(PKD_TOY)
    assert cfg.optim_wrapper.optimizer == toy.optim_wrapper.optimizer  # the toy optimizer is kept
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=7, val_interval=8)
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.test_dataloader is None
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'data') + '/'
    assert cfg.default_hooks.checkpoint.interval == 8
    assert cfg.param_scheduler[0].end == 7
    if not osp.isfile(osp.join(REPO, 'work_dirs/toy/teacher_gfl_r18-fpn-20e_toy.pth')):
        assert cfg.model.teacher_ckpt is None  # a random teacher rather than an error
    fp32 = amp_run.build_cfg(PKD_TOY, dtype='float32', iters=7, work_dir=str(tmp_path))
    assert fp32.optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(ValueError, match='--iters must be at least 1'):
        amp_run.build_cfg(PKD_TOY, dtype='float32', iters=0, work_dir=str(tmp_path))
    with pytest.raises(ValueError, match="'mmkd' or 'mmrazor'"):
        amp_run.build_cfg(PKD_TOY, dtype='float32', iters=1, work_dir=str(tmp_path),
                          algorithm='other')


def test_the_same_pkd_config_through_mmrazor_single_teacher_distill(tmp_path):
    from mmengine.registry import MODELS, init_default_scope
    cfg = amp_run.build_cfg(PKD_TOY, dtype='float32', iters=1, work_dir=str(tmp_path),
                            algorithm='mmrazor')
    mmkd_cfg = amp_run.build_cfg(PKD_TOY, dtype='float32', iters=1, work_dir=str(tmp_path))
    assert cfg.model.type == 'mmrazor.SingleTeacherDistill'
    assert cfg.model.distiller.type == 'mmrazor.ConfigurableDistiller'
    for key in ('loss_forward_mappings', 'student_recorders', 'teacher_recorders'):
        assert cfg.model.distiller[key] == mmkd_cfg.model.distiller[key], key
    init_default_scope('mmdet')
    algo = MODELS.build(cfg.model)
    assert type(algo).__name__ == 'SingleTeacherDistill'
    assert type(algo.student).__name__ == 'GFL' and algo.student.backbone.depth == 18
    # the toy GFL teacher: an R18 trained 2.5x as long (configs/toy/gfl_r18-fpn-20e_toy.py)
    assert type(algo.teacher.backbone).__name__ == 'ResNet' and algo.teacher.backbone.depth == 18
    losses = algo.distiller.distill_losses
    assert sorted(losses) == [f'loss_pkd_fpn{i}' for i in range(4)]
    assert all(type(loss).__module__.startswith('mmrazor.') for loss in losses.values())
    with pytest.raises(ValueError, match='expected an mmkd DetectionDistill'):
        amp_run.mmrazor_model(dict(type='GFL'))


def test_run_checks_judge_the_failures_they_should():
    hook = amp_run.CheckHook()
    hook.times = [0.0, 1.0, 2.0]
    hook.losses = [3.0, 2.0, 1.0]
    hook.distill_dtypes = {'loss_pkd_fpn0': 'float32'}
    hook.feature_dtypes = {'float16'}
    assert amp_run.judge(hook, dtype='float16', iters=3, algorithm='mmkd') == dict(
        status='ok', result='3 iterations; loss 3 -> 1; distillation losses float32; '
        'student features float16')
    hook.nonfinite = {2: ['loss', 'distill.loss_pkd_fpn0'], 5: ['loss']}
    hook.distill_dtypes['loss_pkd_fpn1'] = 'float16'
    result = amp_run.judge(hook, dtype='bfloat16', iters=4, algorithm='mmkd')
    assert result['status'] == 'FAIL'
    assert result['result'] == (
        'only 3 of 4 iterations ran; non-finite losses in 2 iteration(s), first at iteration 2: '
        'loss, distill.loss_pkd_fpn0; distillation losses not float32: loss_pkd_fpn1; the '
        'student did not run in bfloat16 (recorded features: float16)')
    hook.nonfinite = {}
    # mmrazor's losses are reported, not required to be float32
    assert amp_run.judge(hook, dtype='float16', iters=3, algorithm='mmrazor')['status'] == 'ok'
    hook.distill_dtypes = {}
    assert 'no distillation loss' in amp_run.judge(hook, dtype='float16', iters=3,
                                                   algorithm='mmkd')['result']
    hook.times = [float(t) for t in range(101)]  # one iteration a second; 20 warm-up
    assert hook.it_per_s() == pytest.approx(1.0)
    hook.times = [0.0, 0.5, 1.5]
    assert hook.it_per_s() == pytest.approx(2 / 1.5)


def test_amp_run_float32_on_cpu_records_every_iteration(tmp_path):
    """Two real iterations of the LD toy config (a loss returning a dict) through the checks."""
    from mmengine.runner import Runner
    cfg = amp_run.build_cfg(LD_TOY, dtype='float32', iters=2, work_dir=str(tmp_path), workers=0)
    cfg.train_dataloader.dataset.toy_cfg = dict(num_train=4, num_val=2)
    cfg.train_dataloader.batch_size = 2
    hook = amp_run.CheckHook()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(hook)
    runner.train()
    assert len(hook.times) == len(hook.losses) == 2 and not hook.nonfinite
    assert sorted(hook.distill_dtypes) == ['loss_ld_main_kd', 'loss_ld_main_ld', 'loss_ld_vlr_ld']
    assert set(hook.distill_dtypes.values()) == {'float32'}
    assert hook.feature_dtypes == {'float32'}
    assert amp_run.judge(hook, dtype='float32', iters=2, algorithm='mmkd')['status'] == 'ok'


def test_amp_run_refuses_reduced_precision_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    code = amp_run.main([PKD_TOY, '--dtype', 'float16', '--iters', '1', '--work-dir',
                         str(tmp_path), '--out', str(tmp_path / 'r.json')])
    assert code == 2
    assert 'needs a CUDA GPU' in capsys.readouterr().err
    assert not (tmp_path / 'r.json').exists()


def test_ops_check_runs_the_ops_it_compares():
    """On a CPU the comparison is CPU against CPU: it shows the calls match mmcv's API."""
    ops_check = _load('ops_check')
    assert ops_check.compare_ops(device='cpu') == []


def test_benchmark_distill_refuses_a_missing_gpu(monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip('a GPU is present')
    spec = importlib.util.spec_from_file_location(
        'benchmark_distill', osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_distill.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(sys, 'argv', ['benchmark_distill.py', '--device', 'cuda'])
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args()
    assert exit_info.value.code == 2
    assert '--device cuda: torch sees no CUDA GPU; use --device cpu' in capsys.readouterr().err
    monkeypatch.setattr(sys, 'argv', ['benchmark_distill.py', '--json', 'x.json'])
    assert bench.parse_args().device == 'cpu'


# ------------------------------------------------------------------ the machine and the build
def test_machine_facts_for_the_script():
    machine = _load('machine')
    facts = machine.facts()
    assert facts['has_numpy'] == 1
    assert facts['build_key'].startswith(f'torch{torch.__version__.replace("+", "_")}-cuda')
    if not torch.cuda.is_available():
        assert (facts['gpu'], facts['bf16'], facts['arch']) == (0, 0, '')
        assert facts['machine'].startswith('no CUDA GPU visible to torch, python ')
    else:
        assert facts['gpu'] == 1 and re.fullmatch(r'\d+\.\d+', facts['arch'])


def test_mmcv_build_include_folders(tmp_path):
    from torch.utils.cpp_extension import include_paths
    mmcv_build = _load('mmcv_build')
    compat = tmp_path / 'compat'
    has_shim = any(osp.isfile(osp.join(d, 'THC', 'THCAtomics.cuh')) for d in include_paths())
    if has_shim:  # a CUDA build of torch ships it
        assert mmcv_build.thc_shim(str(compat)) == []
    else:
        assert mmcv_build.thc_shim(str(compat)) == [str(compat)]
        assert (compat / 'THC' / 'THCAtomics.cuh').read_text() == \
            '#pragma once\n#include <ATen/cuda/Atomic.cuh>\n'
    # a toolkit with cusparse.h only; pip packages with the others (and a second cusparse.h)
    cuda = tmp_path / 'cuda'
    nvidia = tmp_path / 'nvidia'
    for folder, headers in ((cuda / 'include', ['cuda_runtime.h', 'cusparse.h']),
                            (nvidia / 'cu13' / 'include', ['cublas_v2.h', 'cublasLt.h',
                                                           'cusolverDn.h', 'cusparse.h']),
                            (nvidia / 'cudnn' / 'include', ['cudnn.h'])):
        folder.mkdir(parents=True)
        for h in headers:
            (folder / h).write_text('')
    assert mmcv_build.cuda_math_headers(str(cuda), [str(nvidia)]) == \
        [str(nvidia / 'cu13' / 'include')]
    (cuda / 'include' / 'cublas_v2.h').write_text('')
    (cuda / 'include' / 'cublasLt.h').write_text('')
    (cuda / 'include' / 'cusolverDn.h').write_text('')
    assert mmcv_build.cuda_math_headers(str(cuda), [str(nvidia)]) == []
    assert mmcv_build.main(['wrong']) == 2
