"""pytest-benchmark: dSprites image throughput, rendered on demand vs unpacked from the bit-packed grid.

Run: ``pytest benchmarks/bench_dsprites.py --benchmark-only`` (grouped by batch size;
images/s = n / mean). ``python benchmarks/bench_dsprites.py`` times the whole grid.
"""
import time

import numpy as np
import pytest

from vaebench.data import DSprites


@pytest.fixture(scope="module")
def sources():
    rendered = DSprites()
    packed = DSprites()
    packed._packed = np.concatenate([chunk for _, chunk in rendered.packed_chunks()])  # the cache, in memory
    return {"render": rendered, "packed": packed}


@pytest.mark.parametrize("source", ["render", "packed"])
@pytest.mark.parametrize("n", [64, 256, 4096])
def test_batch(benchmark, sources, source, n):
    """A training batch of random indices as float32 [n, 1, 64, 64]."""
    data = sources[source]
    idx = data.sample_indices(n, np.random.default_rng(0))
    benchmark.group = f"batch of {n}"
    benchmark(data.batch, idx)


@pytest.mark.parametrize("packed", [False, True])
def test_render_chunk(benchmark, sources, packed):
    """16,384 consecutive grid images rendered as uint8 (packed: as bits, the cache's layout)."""
    data = sources["render"]
    benchmark.group = "render 16384 grid images"
    if packed:
        it = lambda: next(data.packed_chunks())  # noqa: E731
    else:
        it = lambda: data.images(np.arange(16384))  # noqa: E731
    benchmark(it)


def main() -> None:
    data = DSprites()
    t = time.perf_counter()
    n = sum(len(chunk) for _, chunk in data.packed_chunks())
    dt = time.perf_counter() - t
    print(f"whole grid, bit-packed: {n} images in {dt:.2f} s = {n / dt:,.0f} images/s")
    t = time.perf_counter()
    for start in range(0, len(data), 16384):
        data.images(np.arange(start, min(start + 16384, len(data))))
    dt = time.perf_counter() - t
    print(f"whole grid, uint8 [n,64,64]: {len(data)} images in {dt:.2f} s = {len(data) / dt:,.0f} images/s")


if __name__ == "__main__":
    main()
