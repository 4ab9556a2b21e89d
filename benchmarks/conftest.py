"""Records what the timings were measured on in pytest-benchmark's JSON."""
import torch

from vaebench.utils.provenance import device_description, git_commit


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["torch_cuda"] = torch.version.cuda
    machine_info["cuda_device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    machine_info["cpu_description"] = device_description("cpu")
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["git_commit"] = git_commit()
