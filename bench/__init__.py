"""Benchmarks of comet-registry-sync: `python -m bench` runs them all and writes bench/results.md.

Speed and memory goals live here (figures printed and recorded), not in timed tests.
"""

import os

# As serving's gunicorn config does: the model calls measured in this process (the in-process
# reference) then run single-threaded like the served ones. Set before scikit-learn loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
