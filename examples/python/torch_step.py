#!/usr/bin/env python3
"""A producer process writes training batches into a shared array; a PyTorch consumer runs a
model step on each, reading the shared pages themselves (no copy, no pickling, no DataLoader
worker queue).

The producer creates "demo/batch" (BATCH rows of FEATURES inputs and one target, float32),
writes a batch in place and publishes it. The consumer opens it read-only, wraps it once with
shmarray.as_tensor (a read-only tensor over the same pages: torch cannot write it by mistake),
and for every publish runs forward, backward and an optimizer step on a small model, then
acknowledges through a one-element array "demo/batch_ack" so that the producer does not
overwrite a batch still in use. Both arrays are ephemeral: nothing is left behind.

    shmarrayd &
    python3 examples/python/torch_step.py                # starts its own producer process
    # or, in two terminals:
    python3 examples/python/torch_step.py --role consumer
    python3 examples/python/torch_step.py --role producer
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import torch

import shmarray

BATCH = 256
FEATURES = 8
BATCH_NAME = "demo/batch"
ACK_NAME = "demo/batch_ack"


def producer(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(0)
    true_weights = rng.normal(size=FEATURES).astype(np.float32)
    with shmarray.Client(args.socket) as client:  # open until the end: the arrays are ephemeral
        batch = client.create(BATCH_NAME, (BATCH, FEATURES + 1), "float32", ephemeral=True)
        ack = client.open(ACK_NAME, wait=args.timeout_s)  # the consumer's acknowledgements
        for step in range(1, args.steps + 1):
            x = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
            batch[:, :FEATURES] = x                          # written in place, in shared memory
            batch[:, FEATURES] = x @ true_weights
            shmarray.publish(batch)                          # version `step`: wakes the consumer
            shmarray.wait(ack, newer_than=step - 1, timeout=args.timeout_s)  # batch consumed
        print(f"producer: {args.steps} batches written and consumed", flush=True)
    return 0


def consumer(args: argparse.Namespace, spawn_producer: bool) -> int:
    with shmarray.Client(args.socket) as client:
        ack = client.create(ACK_NAME, 1, "int64", ephemeral=True)
        child = None
        if spawn_producer:
            child = subprocess.Popen([sys.executable, __file__, "--role", "producer",
                                      "--steps", str(args.steps), "--timeout-s", str(args.timeout_s),
                                      *(["--socket", args.socket] if args.socket else [])])
        try:
            batch = client.open(BATCH_NAME, wait=args.timeout_s)  # read-only grant
            data = shmarray.as_tensor(batch)                      # once: a view, not a copy
            assert data.data_ptr() == batch.ctypes.data, "torch copied the batch"
            inputs, targets = data[:, :FEATURES], data[:, FEATURES:]
            model = torch.nn.Linear(FEATURES, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            version = 0
            for _ in range(args.steps):
                version = shmarray.wait(batch, newer_than=version, timeout=args.timeout_s)
                loss = torch.nn.functional.mse_loss(model(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                print(f"consumer: step on batch {version} (tensor over the shared pages at "
                      f"{data.data_ptr():#x}): loss {loss.item():.4f}", flush=True)
                ack[0] = version
                shmarray.publish(ack)                             # the producer may go on
        finally:
            if child is not None:
                child.wait(timeout=args.timeout_s)
        return 0 if child is None or child.returncode == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default=None, help="broker socket (default: the standard rule)")
    parser.add_argument("--role", choices=["both", "consumer", "producer"], default="both",
                        help="both (default): consume, and run the producer as a child process")
    parser.add_argument("--steps", type=int, default=20, help="number of batches")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="longest wait for anything")
    args = parser.parse_args()
    try:
        if args.role == "producer":
            return producer(args)
        return consumer(args, spawn_producer=args.role == "both")
    except shmarray.Error as e:
        print(f"torch_step: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
