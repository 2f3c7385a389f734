#!/usr/bin/env bash
# The first half of the runs behind studies/relocate/README.md, one after another on one thread
# (relocation at n = 64, 256, 1,024); run_study_part2.sh has the rest.
# bash studies/relocate/run_study.sh   (from the repository root)
set -u
export OMP_NUM_THREADS=1
P="python studies/relocate/permutation.py"
R=studies/relocate/results
for task in permutation identity; do
  $P --task $task --n 64 256 --seeds 0 1 2 3 4 --relocate 1 --check 5 --out $R/${task}_relocate_n64_256.json
  $P --task $task --n 1024 --seeds 0 1 2 3 4 --relocate 1 --lr 0.001 --check 10 --hold 200 --out $R/${task}_relocate_n1024_lr0.001.json
done
$P --n 1024 --seeds 0 --relocate 1 --lr 0.01 --batches 1000 --check 50 --out $R/permutation_relocate_n1024_lr0.01.json
