"""The allocator tuning: a training step stops page-faulting its activations back in.

Each case runs in a fresh interpreter, since the tuning is process-wide and cannot be undone."""
import os
import subprocess
import sys

import pytest

from vaebench.utils import allocator

pytestmark = pytest.mark.skipif(not allocator.is_glibc(), reason="the tuning is glibc's mallopt")

STEADY_FAULTS = """
import resource, torch
from vaebench.utils import allocator
on = allocator.keep_freed_memory()
torch.set_num_threads(1)
from vaebench.bench.training_cases import make_case
step = make_case("fp32", "conv", 8)
for _ in range(8):  # warm-up: the heap grows to the step's peak (3 steps were not enough on
    step()            # every machine: one measured 258 faults after 3 and none after 8)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(on, allocator.applied(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _run(env_value: str | None) -> tuple[str, str, int]:
    env = {k: v for k, v in os.environ.items() if k != "VAEBENCH_MALLOC_TUNING"}
    if env_value is not None:
        env["VAEBENCH_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", STEADY_FAULTS], capture_output=True, text=True, env=env, check=True)
    on, applied, faults = out.stdout.split()
    return on, applied, int(faults)


def test_tuned_training_step_reuses_freed_memory():
    # A conv step at batch 8 frees about 4 MB of activations (~1,000 pages); with glibc's default
    # thresholds the next step faults most of them in again. Tuned, the heap keeps them: after
    # warm-up, five steps fault in fewer pages than a tenth of one step's activations.
    on, applied, faults = _run(None)
    assert (on, applied) == ("True", "True")
    assert faults < 100, f"{faults} minor page faults in 5 steady-state steps"


@pytest.mark.parametrize("value", ["0", "off"])
def test_env_switch_turns_tuning_off(value):
    on, applied, _ = _run(value)
    assert (on, applied) == ("False", "False")
