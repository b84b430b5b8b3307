"""PyTorch over shared arrays without a copy (Debian's python3-torch 1.13).

Skipped where PyTorch is not installed: tools/setup.sh installs python3-torch only with
SHMARRAY_WITH_TORCH=1 (163 more packages, about 2 minutes).
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

import shmarray
from conftest import run_python

torch = pytest.importorskip(
    "torch",
    reason="python3-torch is not installed (apt-get install --no-install-recommends "
    "python3-torch, or SHMARRAY_WITH_TORCH=1 tools/setup.sh)",
)

WRITER = r"""
import sys
import torch
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    arr = c.open(name, writable=True)
t = torch.from_numpy(arr)                     # the plain torch call, on a writable grant
t[0] = 42.0                                   # a tensor write lands in the shared pages
print("published", shmarray.publish(t), flush=True)   # publish takes the tensor
v = shmarray.wait(t, newer_than=1, timeout=20)
print("saw", v, float(t[1]), flush=True)
"""


def test_writable_tensors_share_memory_both_ways_across_processes(client, broker, children):
    arr = client.create("torch/a", 4, "float32")
    t = torch.from_numpy(arr)
    assert np.shares_memory(t.numpy(), arr)
    assert shmarray.as_tensor(arr).data_ptr() == t.data_ptr() == arr.ctypes.data
    child = children(WRITER, broker.socket, "torch/a")
    assert child.expect("published") == "published 1"
    assert shmarray.wait(t, newer_than=0, timeout=20) == 1
    assert float(t[0]) == 42.0 and arr[0] == 42.0  # the child's tensor write, seen here
    t[1] = 7.0                                       # and this process's, seen there
    assert shmarray.publish(t) == 2
    assert child.expect("saw") == "saw 2 7.0"
    assert child.finish() == 0
    del t
    client.remove("torch/a")


READ_ONLY = r"""
import sys, warnings
warnings.simplefilter("error")                # as_tensor must not warn
import torch
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    arr = c.open(name)                        # a read-only grant: a PROT_READ mapping
ro = shmarray.as_tensor(arr)
assert ro.data_ptr() == arr.ctypes.data       # no copy
refused = []
model = torch.nn.Linear(3, 1)
for write in (lambda: ro.add_(1), lambda: ro.__setitem__(0, 5.0), lambda: ro[1:].zero_(),
              lambda: torch.add(ro, 1, out=ro), lambda: torch.nn.functional.relu(ro, inplace=True),
              lambda: torch.nn.ReLU(inplace=True)(ro), lambda: ro.copy_(ro * 2),
              lambda: ro.view(2, 3).t().mul_(2), lambda: torch.nn.init.zeros_(ro),
              lambda: ro.data.fill_(1)):
    try:
        write()
        refused.append("WROTE")
    except shmarray.PermissionDenied as e:
        assert "read-only shared array" in str(e) and "writable=True" in str(e), e
        refused.append("refused")
try:
    ro.numpy()[0] = 1.0
except ValueError:
    refused.append("refused")
# Reading works: a model step on the shared tensor (its result is an ordinary tensor).
loss = model(ro.view(2, 3)).sum()
loss.backward()
doubled = ro * 2
doubled.add_(1)                               # a computation's result is private and writable
print("refused", refused.count("refused"), "of", len(refused), float(ro.sum()),
      type(ro[1:]).__name__, type(doubled).__name__, flush=True)
"""

PLAIN_FROM_NUMPY = r"""
import sys, warnings
import torch
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    arr = c.open(name)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = torch.from_numpy(arr)                 # what the issue saw: a warning, then
print("writing", flush=True)
t.add_(1)                                     # SIGSEGV on the read-only mapping
print("survived", flush=True)
"""


def test_read_only_tensor_refuses_writes_without_a_crash(client, broker):
    arr = client.create("torch/ro", 6, "float32")
    arr[:] = np.arange(6)
    del arr  # this process holds no writable mapping: children map it PROT_READ
    r = run_python(READ_ONLY, broker.socket, "torch/ro")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "refused 11 of 11 15.0 ReadOnlyTensor Tensor"
    # The hazard as_tensor avoids: the plain torch path dies of SIGSEGV.
    crash = run_python(PLAIN_FROM_NUMPY, broker.socket, "torch/ro")
    assert crash.returncode == -signal.SIGSEGV, (crash.returncode, crash.stdout, crash.stderr)
    assert "survived" not in crash.stdout
    assert np.array_equal(client.open("torch/ro"), np.arange(6))  # nothing was written
    client.remove("torch/ro")


def test_sync_functions_take_tensors_and_their_views(client):
    arr = client.create("torch/s", (2, 3), "float64")
    t = torch.from_numpy(arr)
    assert shmarray.version(t) == 0
    assert shmarray.publish(t[1]) == 1               # a view of the tensor
    with shmarray.lock(t.T, timeout=1):
        t[0, 0] = 1.0
    assert shmarray.wait(shmarray.as_tensor(arr), newer_than=0, timeout=0) == 1
    reader = client.open("torch/s")                   # same process: a read-only view
    assert shmarray.version(shmarray.as_tensor(reader)[1]) == 1
    with pytest.raises(shmarray.PermissionDenied):
        shmarray.publish(shmarray.as_tensor(reader))  # a read-only tensor never publishes
    with pytest.raises(TypeError, match="does not share an shmarray mapping"):
        shmarray.publish(torch.zeros(3))
    with pytest.raises(TypeError):
        shmarray.as_tensor(np.zeros(3))
    del t, reader
    client.remove("torch/s")


def test_dlpack_shares_writable_arrays_and_refuses_read_only_ones(client):
    if not hasattr(np.ndarray, "__dlpack__"):
        pytest.skip(f"NumPy {np.__version__} has no __dlpack__ (needs 1.22)")
    arr = client.create("torch/d", 5, "int32")
    t = torch.from_dlpack(arr)
    t[2] = 9
    assert arr[2] == 9 and t.data_ptr() == arr.ctypes.data
    reader = client.open("torch/d")
    with pytest.raises(BufferError, match="readonly"):
        torch.from_dlpack(reader)  # DLPack cannot signal read-only: NumPy refuses, no crash
    del t, reader
    client.remove("torch/d")


# Every in-place torch operation, called on a ReadOnlyTensor over a read-only grant with arguments
# that torch accepts (found by calling it on a writable twin of the same shape: argument parsing
# comes before __torch_function__). Prints "refused L" per operation refused with
# PermissionDenied; "WROTE L ..." when a call on the read-only tensor returned or failed otherwise
# (a SIGSEGV ends the child: the test sees the signal and the last label printed).
EVERY_INPLACE = r"""
import inspect, sys, warnings
warnings.simplefilter("ignore")
import torch
import torch.nn.functional as F
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    arr = c.open(name)                        # a read-only grant: a PROT_READ mapping
other = torch.ones(2, 3)
idx = torch.tensor([0, 1])
candidates = [(), (2,), (other,), (other, other), (True,), (0, 1), (0, idx, other), (0, idx, 1.0),
              (0, torch.zeros(2, 3, dtype=torch.long), other),
              (0, torch.zeros(2, 3, dtype=torch.long), other, "sum"), (0, idx, other, "prod"),
              (torch.ones(2, 3, dtype=torch.bool), 1.0), (torch.ones(2, 3, dtype=torch.bool), other),
              ((idx,), torch.ones(2, 3)), (idx, torch.ones(2)), ((2, 3),), ((2, 3), (3, 1)),
              (other, 0.5), (torch.ones(2, 4), torch.ones(4, 3)), (other, torch.ones(3)),
              (torch.ones(2), torch.ones(3)), (torch.ones(1, 2, 4), torch.ones(1, 4, 3)),
              (lambda x: x,), (other, lambda a, b: a), (other, other, lambda a, b, c: a),
              (2, 0, 1.0), ((2, 3), 1, 1), (0.5, True), ([other], [other]),
              ([other], [other], 0.5), (idx, 1.0, 2.0)]

def accepted(call):
    for args in candidates:
        try:
            if call(torch.zeros(2, 3), *args) is NotImplemented:
                continue
        except TypeError:
            continue
        except Exception as e:
            return args, type(e)              # parsed, then failed on values
        return args, None
    return None, None

ops = []
for n in sorted(dir(torch.Tensor)):
    if (n.endswith("_") and not n.endswith("__") and n != "requires_grad_") or n in (
            "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __iand__ "
            "__ior__ __ixor__ __ilshift__ __irshift__ __setitem__".split()):
        ops.append(("Tensor." + n, lambda t, *a, n=n: getattr(t, n)(*a)))
for module, prefix in ((torch, "torch."), (F, "F."), (torch.nn.init, "init.")):
    for n in sorted(dir(module)):
        f = getattr(module, n)
        if (n.endswith("_") and not n.endswith("__") and callable(f) and not inspect.isclass(f)
                and (not n.startswith("_") or n.startswith("_foreach_"))):
            if n.startswith("_foreach_"):
                ops.append((prefix + n, lambda t, *a, f=f: f([t], *a)))
            else:
                ops.append((prefix + n, lambda t, *a, f=f: f(t, *a)))
for n in sorted(dir(F)):
    f = getattr(F, n)
    if callable(f) and not n.startswith("_"):
        try:
            params = inspect.signature(f).parameters
        except (TypeError, ValueError):
            continue
        if "inplace" in params:
            ops.append(("F." + n + "(inplace=True)", lambda t, *a, f=f: f(t, *a, inplace=True)))
unexercised = []
for label, call in ops:
    args, twin_error = accepted(call)
    if args is None:
        unexercised.append(label)
        continue
    print("calling", label, flush=True)
    try:
        call(shmarray.as_tensor(arr).view(2, 3), *args)
        print("WROTE", label, "returned", flush=True)
    except shmarray.PermissionDenied:
        print("refused", label, flush=True)
    except Exception as e:
        # validated its arguments before any write, as on the writable twin (init.dirac_)
        print("refused" if type(e) is twin_error else "WROTE", label, type(e).__name__, flush=True)
print("total", len(ops), "unexercised", *unexercised, flush=True)
"""


def test_every_in_place_torch_operation_on_a_read_only_tensor_raises(client, broker):
    arr = client.create("torch/every", 6, "float32")
    arr[:] = np.arange(6)
    del arr
    r = run_python(EVERY_INPLACE, broker.socket, "torch/every")
    lines = r.stdout.splitlines()
    last_call = [line for line in lines if line.startswith("calling")][-1:]
    assert r.returncode == 0, (r.returncode, last_call, r.stderr[-2000:])
    wrote = [line for line in lines if line.startswith("WROTE")]
    # Tensor.set_ rebinds the tensor to other memory (no write) and skips __torch_function__.
    assert wrote == ["WROTE Tensor.set_ returned"], wrote
    refused = sum(line.startswith("refused") for line in lines)
    total = int(lines[-1].split()[1])
    unexercised = lines[-1].split()[3:]
    assert refused >= 0.95 * total and refused == total - len(unexercised) - 1, lines[-1]
    assert np.array_equal(client.open("torch/every"), np.arange(6))  # nothing was written
    client.remove("torch/every")


ESCAPES = r"""
import sys, warnings
import numpy as np
import torch
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    arr = c.open(name)
ro = shmarray.as_tensor(arr)
model = torch.nn.Linear(6, 1)
param = torch.nn.Parameter(ro)                # a parameter over the shared pages stays read-only
optimizers = [torch.optim.SGD([param], lr=0.1), torch.optim.SGD([param], lr=0.1, foreach=True),
              torch.optim.Adam([param], foreach=True)]
results = []
for what in (lambda: ro.__dlpack__(), lambda: torch.from_dlpack(ro), lambda: np.from_dlpack(ro),
             lambda: ro.storage(), lambda: ro[1:].storage().fill_(1),
             lambda: torch.nn.init.constant_(tensor=ro, val=1.0),
             lambda: torch.nn.functional.relu(input=ro, inplace=True),
             lambda: torch._foreach_add_([ro], 1), *(o.step for o in optimizers)):
    param.grad = None
    (param * 2).sum().backward()              # a gradient for the optimizers' steps
    try:
        what()
        results.append("ALLOWED")
    except shmarray.PermissionDenied as e:
        assert "read-only shared array" in str(e), e
        results.append("refused")
print(" ".join(results), flush=True)
# Reads stay possible: a copy, numpy (read-only), pickling, a model step.
assert torch.equal(ro.clone(), torch.arange(6, dtype=torch.float32))
assert not ro.numpy().flags.writeable and not np.asarray(ro).flags.writeable
import pickle
assert torch.equal(pickle.loads(pickle.dumps(ro)), ro)
model(ro).sum().backward()
print("reads ok", flush=True)
"""


def test_read_only_tensor_refuses_dlpack_storage_and_optimizer_steps(client, broker):
    arr = client.create("torch/esc", 6, "float32")
    arr[:] = np.arange(6)
    del arr
    r = run_python(ESCAPES, broker.socket, "torch/esc")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    assert r.stdout.split("\n")[:2] == [" ".join(["refused"] * 11), "reads ok"], r.stdout
    assert np.array_equal(client.open("torch/esc"), np.arange(6))
    client.remove("torch/esc")
