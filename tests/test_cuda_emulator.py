"""The CPU emulator of the CUDA execution model (csrc/emu) behaves as CUDA does where vaebench's
kernels depend on it, and reports misuse instead of hanging: small kernels in
csrc/emu/selftest_kernels.cpp, written in the same CUDA vocabulary as the .cu files."""
import numpy as np
import pytest

import cuda_emulator

pytestmark = pytest.mark.cuda_emulated


@pytest.fixture(scope="module")
def st():
    m = cuda_emulator.build()
    m.set_options()
    return m.selftest


def test_syncthreads_is_a_real_barrier(st):
    blocks, threads = 3, 256
    out = np.array(st.reverse(blocks, threads)).reshape(blocks, threads)
    expected = np.arange(threads)[::-1] + 1000 * np.arange(blocks)[:, None]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("width", [32, 8])
def test_shuffles_follow_ptx_semantics(st, width):
    threads = 64  # two warps
    out = np.array(st.shuffles(threads, width)).reshape(threads, 4)
    lane = np.arange(threads) % 32
    seg = lane - lane % width  # first lane of the lane's segment
    val = lambda src: 100 * src + 7  # noqa: E731
    np.testing.assert_array_equal(out[:, 0], val(seg + (lane + 3) % width))  # __shfl_sync(v, lane + 3, width)
    down = lane % width + 5 < width
    np.testing.assert_array_equal(out[:, 1], val(np.where(down, lane + 5, lane)))
    up = lane % width >= 2
    np.testing.assert_array_equal(out[:, 2], val(np.where(up, lane - 2, lane)))
    x = lane ^ 6
    np.testing.assert_array_equal(out[:, 3], val(np.where(x // width == lane // width, x, lane)))


def test_shuffles_are_lockstep(st):
    # v <- v[lane + 1] + 1, 200 times: a rotation, so lane l ends with ((l + 200) mod 32) + 200.
    out = np.array(st.lockstep(200))
    np.testing.assert_array_equal(out, (np.arange(32) + 200) % 32 + 200)


def test_exited_threads_do_not_hold_a_barrier(st):
    assert st.early_exit() == [42] * 8


def test_shared_memory_starts_as_garbage(st):
    assert st.uninitialised_shared() == 0xFFFFFFFF  # a kernel that forgets to zero it sees this


def test_shared_memory_is_private_to_each_block(st):
    assert all(st.block_private(8, 64, 20))


def test_atomics_count_exactly(st):
    total, ftotal = st.atomics(5, 96)
    assert total == 5 * 96 and ftotal == 0.5 * 5 * 96


def test_barrier_in_divergent_code_is_an_error(st):
    with pytest.raises(RuntimeError, match="divergent code"):
        st.divergent_barrier()


def test_deadlock_is_an_error(st):
    with pytest.raises(RuntimeError, match="deadlock"):
        st.deadlock()


def test_shuffle_naming_an_exited_lane_is_an_error(st):
    with pytest.raises(RuntimeError, match="exited"):
        st.exited_lane()


@pytest.mark.parametrize("threads,smem", [(2048, 0), (0, 0), (32, 64 * 1024)])
def test_bad_launch_configuration_is_the_launch_error(st, threads, smem):
    with pytest.raises(RuntimeError, match="launch failed: invalid"):
        st.bad_config(threads, smem)
    st.reverse(1, 32)  # the error was consumed; later launches run
