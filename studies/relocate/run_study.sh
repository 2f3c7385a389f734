#!/usr/bin/env bash
# The runs behind studies/relocate/README.md, one after another on one thread.
# bash studies/relocate/run_study.sh   (from the repository root; about an hour on one core)
set -u
export OMP_NUM_THREADS=1
P="python studies/relocate/permutation.py"
R=studies/relocate/results
for task in permutation identity; do
  $P --task $task --n 64 256 --seeds 0 1 2 3 4 --relocate 1 --check 5 --out $R/${task}_relocate_n64_256.json
  $P --task $task --n 1024 --seeds 0 1 2 3 4 --relocate 1 --lr 0.001 --check 10 --hold 200 --out $R/${task}_relocate_n1024_lr0.001.json
done
$P --n 1024 --seeds 0 --relocate 1 --lr 0.01 --batches 1000 --check 50 --out $R/permutation_relocate_n1024_lr0.01.json
$P --n 4096 --seeds 0 1 --relocate 1 --lr 0.00025 --batches 1000 --check 20 --hold 50 --out $R/permutation_relocate_n4096_lr0.00025.json
for task in permutation identity; do
  $P --task $task --n 64 --seeds 0 1 2 3 4 --relocate 0 --check 50 --out $R/${task}_paper_n64.json
  $P --task $task --n 256 --seeds 0 1 2 --relocate 0 --check 100 --out $R/${task}_paper_n256.json
done
$P --n 1024 --seeds 0 --relocate 0 --lr 0.001 --check 100 --out $R/permutation_paper_n1024_lr0.001.json
