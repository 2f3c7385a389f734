#!/usr/bin/env bash
# The second half of the runs behind studies/relocate/README.md (the first: run_study.sh up to n = 1024),
# one after another on one thread: the paper's mechanism at n = 64 and 256, then n = 4096 with relocation.
set -u
export OMP_NUM_THREADS=1
P="python studies/relocate/permutation.py"
R=studies/relocate/results
for task in permutation identity; do
  $P --task $task --n 64 --seeds 0 1 2 --relocate 0 --check 50 --hold 0 --out $R/${task}_paper_n64.json
  $P --task $task --n 256 --seeds 0 1 2 --relocate 0 --check 100 --hold 0 --out $R/${task}_paper_n256.json
done
$P --n 4096 --seeds 0 --relocate 1 --lr 0.00025 --batches 600 --check 20 --hold 0 --out $R/permutation_relocate_n4096_lr0.00025.json
