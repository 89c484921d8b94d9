"""The wheel folder of ``tools/gpu_check.sh``: what to download, and what to leave out of it.

    python tools/gpu_check/wheels.py prune DIR --have FILE --keep REQUIREMENTS...

``prune`` deletes from DIR the wheels (and source archives) of the packages named in FILE, which
the GPU machine already has, except those our requirement files pin to a version (they must come
from the folder). FILE is ``pip list --format=freeze`` output of the GPU machine, or package names
separated by newlines or commas.
"""
import argparse
import glob
import os
import os.path as osp
import re
import sys
from typing import Iterable, List, Set


def normalize(name: str) -> str:
    """A project name as PEP 503 compares them: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r'[-_.]+', '-', name).lower()


def project_of(filename: str) -> str:
    """The normalised project name of a wheel or source archive file name."""
    base = osp.basename(filename)
    if base.endswith('.whl'):
        return normalize(base.split('-')[0])
    for ext in ('.tar.gz', '.zip', '.tar.bz2'):
        if base.endswith(ext):
            return normalize(base[:-len(ext)].rsplit('-', 1)[0])
    raise ValueError(f'not a wheel or source archive: {filename}')


def names_in(text: str) -> Set[str]:
    """Package names in ``pip freeze`` lines, requirement lines or comma-separated lists."""
    names = set()
    for item in re.split(r'[,\n]', text):
        item = item.split('#')[0].strip()
        if not item or item.startswith('-'):
            continue
        name = re.match(r'[A-Za-z0-9][A-Za-z0-9._-]*', item)
        if name:
            names.add(normalize(name.group(0)))
    return names


def pinned_names(requirement_files: Iterable[str]) -> Set[str]:
    """Names that a requirement file constrains to versions (``name==1.0``, ``name<81``)."""
    pinned = set()
    for path in requirement_files:
        with open(path) as f:
            for line in f:
                line = line.split('#')[0].strip()
                match = re.match(r'([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==|<|>|!=|~=)', line)
                if match:
                    pinned.add(normalize(match.group(1)))
    return pinned


def prune(folder: str, have: Set[str], keep: Set[str]) -> List[str]:
    """Delete the files in ``folder`` of projects in ``have`` but not in ``keep``; return them."""
    removed = []
    for path in sorted(glob.glob(osp.join(folder, '*'))):
        try:
            project = project_of(path)
        except ValueError:
            continue
        if project in have and project not in keep:
            os.remove(path)
            removed.append(osp.basename(path))
    return removed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    pr = sub.add_parser('prune', help='leave out the packages the GPU machine has')
    pr.add_argument('folder')
    pr.add_argument('--have', required=True, help='the GPU machine\'s packages')
    pr.add_argument('--keep', nargs='*', default=[],
                    help='requirement files whose version-pinned packages are kept')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with open(args.have) as f:
        have = names_in(f.read())
    removed = prune(args.folder, have, pinned_names(args.keep))
    print(f'left out {len(removed)} file(s) the GPU machine has: {" ".join(removed) or "none"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
