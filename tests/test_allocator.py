"""The allocator tuning: a training step stops page-faulting its activations back in.

Each case runs in a fresh interpreter, since the tuning is process-wide and cannot be undone."""
import os
import subprocess
import sys

import pytest

from vaebench.utils import allocator

pytestmark = pytest.mark.skipif(not allocator.is_glibc(), reason="the tuning is glibc's mallopt")

STEADY_FAULTS = """
import resource, statistics, torch
from vaebench.utils import allocator
on = allocator.keep_freed_memory()
torch.set_num_threads(1)
from vaebench.bench.training_cases import make_case
step = make_case("fp32", "conv", 8)
for _ in range(8):  # warm-up: the heap grows to the step's peak
    step()
faults = []
for _ in range(9):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(on, allocator.applied(), statistics.median_low(faults))
"""


def _run(env_value: str | None) -> tuple[str, str, int]:
    """(tuning on, applied, median minor page faults of one steady-state step) in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "VAEBENCH_MALLOC_TUNING"}
    if env_value is not None:
        env["VAEBENCH_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", STEADY_FAULTS], capture_output=True, text=True, env=env, check=True)
    on, applied, faults = out.stdout.split()
    return on, applied, int(faults)


def test_tuned_training_step_reuses_freed_memory():
    # A conv step at batch 8 frees about 4 MB of activations (~1,000 pages); with glibc's default
    # thresholds every step faults them in again (measured 1,200 to 2,300 a step). Tuned, the heap
    # keeps them: the median step faults in fewer than a tenth of them. The median, because an
    # occasional step still faults a few hundred pages (one heap growth) on some machines.
    on, applied, tuned = _run(None)
    assert (on, applied) == ("True", "True")
    _, _, untuned = _run("0")
    assert untuned > 500, f"the untuned step faulted only {untuned} pages: the case no longer frees its activations"
    assert tuned < 100, f"the median tuned step faulted {tuned} pages (untuned: {untuned})"


@pytest.mark.parametrize("value", ["0", "off"])
def test_env_switch_turns_tuning_off(value):
    on, applied, _ = _run(value)
    assert (on, applied) == ("False", "False")
