"""Resume a killed run so that it logs the losses the uninterrupted run would have logged."""
import logging
from functools import partial
from typing import List, Optional

from mmengine.config import Config
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmkd.registry import HOOKS
from ..rng_state import capture_rng_state, restore_rng_state

#: the checkpoint key that holds the generator states, one per rank
RNG_STATE_KEY = 'rng_state'


def _log(msg: str, level: int = logging.INFO) -> None:
    print_log(f'ExactResumeHook: {msg}', logger='current', level=level)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Save the random number generators in every checkpoint and restore them on resume.

    mmengine 0.10.7 checkpoints hold the weights, the optimizer, the schedulers and the seed, but
    not the state of the random number generators. A run resumed from ``epoch_N.pth`` therefore
    draws other random numbers from epoch N+1 on than the uninterrupted run: ``RandomFlip``
    (NumPy) flips other images, the RPN and RoI samplers (torch) pick other proposals, MGD masks
    other pixels, and every loss after the resume differs. With this hook, a killed and resumed
    run logs the same losses as the uninterrupted one, bit for bit on the same machine (the same
    operations on the same numbers, see the limits below).

    ``tools/train.py`` adds it to every config (:func:`add_exact_resume_hook`); with a Runner of
    your own, add ``custom_hooks=[dict(type='mmkd.ExactResumeHook')]``.

    - **Saving.** Every checkpoint gets ``checkpoint['rng_state'] = dict(ranks=[...])``: each
      rank's Python ``random``, NumPy, torch CPU and CUDA states
      (:func:`mmkd.engine.rng_state.capture_rng_state`) at the moment the checkpoint is written.
      Under DDP only rank 0 writes, so every rank's state is gathered first (at the end of each
      epoch, and at each iteration an iteration-based ``CheckpointHook`` saves).
    - **Restoring**, only on resume (``--resume``; not on ``load_from`` fine-tuning, which starts
      its own streams): each rank gets its own states back at the start of the first epoch after
      the resume (``before_train_epoch``, first of all hooks), which is where the uninterrupted
      run continued after writing the checkpoint: before the epoch's data iterator is created and
      before any augmentation or model draws.
    - **Validation draws nothing from training's streams**: the validation loop runs between a
      capture and a restore. Otherwise the uninterrupted run would validate (creating a data
      iterator draws from torch's generator) between writing ``epoch_N.pth`` and epoch N+1, while
      the resumed run does not. As a side effect a run validated every epoch trains exactly like
      one that never validates.
    - **The seed.** A config without ``randomness.seed`` gets a new random seed in the resumed
      run, and mmengine builds the train dataloader with it before it restores the checkpoint's
      seed; the hook gives the checkpoint's seed to the sampler (whose shuffle is
      ``seed + epoch``) and to mmengine's worker init function.

    **Why DataLoader workers are exact** (``num_workers > 0``, ``persistent_workers=False``).
    Each epoch starts new worker processes. torch seeds worker ``w`` from the iterator's base
    seed (drawn from the main process's torch generator, which is restored), and mmengine's
    ``worker_init_fn`` (``mmengine/dataset/utils.py``) then re-seeds NumPy, ``random`` and
    torch in the worker with ``num_workers * rank + w + seed``: the same value at every epoch,
    in the uninterrupted and the resumed run. Which images worker ``w`` loads follows from the
    sampler (``seed + epoch``) and from batches being handed to workers in turn. So what a worker
    draws in epoch N+1 depends on nothing that happened before epoch N+1.

    **Not exact**: ``persistent_workers=True`` with ``num_workers > 0`` (the workers' streams
    run on across epochs inside the worker processes, which no checkpoint can capture; the hook
    warns at resume; mmkd's COCO data base sets ``persistent_workers=False``); resuming with
    another number of processes (GPUs) or workers (other data on each rank / worker; the hook
    warns and restores nothing in the first case); ``IterBasedTrainLoop`` (mmengine replays the
    finished iterations' data on resume, drawing from the generators again; mmdet's and mmkd's
    detection configs are epoch-based); a resume from a checkpoint written mid-epoch (mmengine's
    epoch loop restarts the epoch); non-deterministic CUDA kernels (atomics in backward passes:
    the numbers differ slightly run to run anyway, resumed or not).
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None  # this rank's states, restored at the next epoch
        self._pending_seed: Optional[int] = None
        self._gathered: Optional[tuple] = None  # ((epoch, iter), [state of each rank])
        self._validating_states: Optional[List[dict]] = None
        self._patched_val_loop = None

    # ------------------------------------------------------------------ saving
    def _gather(self, runner) -> None:
        self._gathered = ((runner.epoch, runner.iter), all_gather_object(capture_rng_state()))

    def after_train_epoch(self, runner) -> None:
        if get_dist_info()[1] > 1:  # one gather per epoch, before CheckpointHook writes
            self._gather(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if get_dist_info()[1] > 1 and any(
                isinstance(hook, CheckpointHook) and not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner)))
                for hook in runner.hooks):
            self._gather(runner)  # the same test as CheckpointHook.after_train_iter

    def _states_now(self, runner) -> Optional[List[dict]]:
        if self._validating_states is not None:  # e.g. a best checkpoint written by validation
            return self._validating_states
        if get_dist_info()[1] == 1:
            return [capture_rng_state()]
        if self._gathered is not None and self._gathered[0] == (runner.epoch, runner.iter):
            return self._gathered[1]
        return None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._states_now(runner)
        if states is None:
            _log('this checkpoint was written at a point where the ranks\' random generator '
                 'states were not gathered; a run resumed from it continues with fresh random '
                 'streams.', logging.WARNING)
            return
        checkpoint[RNG_STATE_KEY] = dict(ranks=states)

    # ------------------------------------------------------------------ restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: fine-tuning starts its own random streams
        saved = checkpoint.get(RNG_STATE_KEY)
        rank, world_size = get_dist_info()
        if saved is None:
            _log('the checkpoint holds no random generator states (it was written without '
                 'this hook); the resumed run continues with fresh random streams, so its '
                 'losses differ from an uninterrupted run\'s.', logging.WARNING)
            return
        if len(saved['ranks']) != world_size:
            _log(f'the checkpoint was written by {len(saved["ranks"])} process(es), this run has '
                 f'{world_size}: each process now sees other data, so the random generator '
                 'states are not restored and the resumed run is not the uninterrupted one.',
                 logging.WARNING)
            return
        self._pending = saved['ranks'][rank]
        self._pending_seed = checkpoint.get('meta', {}).get('seed')
        loader = runner.train_dataloader
        if loader.num_workers > 0 and loader.persistent_workers:
            _log('persistent_workers=True: the data workers\' random streams run on across '
                 'epochs inside the worker processes and are not in the checkpoint, so the '
                 'resumed run augments other images than the uninterrupted run. Set '
                 'train_dataloader.persistent_workers=False for an exact resume.',
                 logging.WARNING)
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            _log(f'{type(runner.train_loop).__name__}: mmengine replays the finished iterations\' '
                 'data on resume, so the resumed run is not exact.', logging.WARNING)

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        if self._pending_seed is not None:
            self._reseed_train_dataloader(runner, self._pending_seed)
        restore_rng_state(self._pending)
        self._pending = self._pending_seed = None
        _log('random generator states restored from the checkpoint.')

    @staticmethod
    def _reseed_train_dataloader(runner, seed: int) -> None:
        """Give the train sampler and mmengine's worker init function the checkpoint's seed."""
        loader = runner.train_dataloader
        changed = []
        for sampler in (loader.sampler, getattr(loader.batch_sampler, 'sampler', None)):
            if isinstance(getattr(sampler, 'seed', None), int) and sampler.seed != seed:
                sampler.seed = seed
                changed.append(type(sampler).__name__)
        init_fn = loader.worker_init_fn
        if isinstance(init_fn, partial) and init_fn.keywords.get('seed', seed) != seed:
            loader.worker_init_fn = partial(init_fn.func, *init_fn.args,
                                            **dict(init_fn.keywords, seed=seed))
            changed.append('worker_init_fn')
        if changed:
            _log(f'the train dataloader was built with another seed than the checkpoint\'s; '
                 f'{", ".join(changed)} now use(s) the checkpoint\'s seed {seed}.')

    # ------------------------------------------------------------------ validation
    def before_train(self, runner) -> None:
        val_loop = runner.val_loop
        if val_loop is None:
            return
        run = val_loop.run

        def run_without_touching_training_rng(*args, **kwargs):
            own = capture_rng_state()
            self._validating_states = (all_gather_object(own)
                                       if get_dist_info()[1] > 1 else [own])
            try:
                return run(*args, **kwargs)
            finally:
                restore_rng_state(own)
                self._validating_states = None

        val_loop.run = run_without_touching_training_rng
        self._patched_val_loop = val_loop

    def after_train(self, runner) -> None:
        if self._patched_val_loop is not None:
            self._patched_val_loop.__dict__.pop('run', None)
            self._patched_val_loop = None


def add_exact_resume_hook(cfg: Config) -> Config:
    """Add :class:`ExactResumeHook` to ``cfg.custom_hooks`` unless it is there already."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == 'ExactResumeHook' for h in hooks
               if isinstance(h, dict)):
        hooks.append(dict(type='mmkd.ExactResumeHook'))
    cfg.custom_hooks = hooks
    return cfg
