#!/usr/bin/python3
"""sefl's PyTorch peer: the cnn-se network of common/nn/model.c in PyTorch.

Used to check that sefl's C training is neither slower nor different in
behaviour from a mainstream framework on the same model and data. Run with
Debian's python3-torch (/usr/bin/python3) on Debian's dataset-fashion-mnist.

The network is the one model.c computes, layer for layer:
    conv1 1->32 5x5, ReLU, SE(32, r), maxpool 2
    conv2 32->64 5x5, ReLU, SE(64, r), maxpool 2
    fc1 1024->512, ReLU, SE-vec(512, r)
    fc 512->10
with PyTorch's default initialisation except each excitation's output bias,
which starts at GATE_BIAS as model_init does, and every gate is
GATE_SCALE * sigmoid(z) as in layers.h, so gates start at 1 (see model.h
and layers.h for why). The
script counts its parameters and refuses to run unless they are sefl's
649,526 (r 8), so the two can never silently drift apart.

Modes (figures are printed as `name value` lines):
  speed   [--batch B] [--samples N] [--threads T]
          one warm-up epoch, one timed epoch of plain SGD (lr 0.005) on the
          first N training images; last line `train_samples_per_s X`
          (what tests/bench/bench.sh compares with `sefl-bench train`).
  central [--epochs E] [--batch B] [--lr L] [--momentum M]
          centralised training on the 60,000 training images,
          `epoch E test_acc X` after each epoch.
  grads   [--batch B] [--batches K] [--gate-bias G] [--gate-scale S]
          the gradient norm of every tensor at initialisation, averaged
          over K mini-batches of the first images (as `sefl-bench grads`).
  fed     [--clients N] [--rounds R] [--max-samples S] [--private se|none]
          [--gate-bias G] [--gate-scale S] [--batch B] [--lr L]
          in-process FedAvg on an IID split of the pooled 70,000 images
          (75/25 train/test per client, as sefl's partitions), every client
          every round, one local epoch; the private tensors stay with each
          client. Prints `round R weighted_accuracy X` after each round.
--gate-bias accepts a number or `default` (PyTorch's uniform draw, the
initialisation sefl had before the plateau fix); --gate-scale 1 gives
PyTorch's own SE (a plain sigmoid), as sefl had before.
"""
import argparse
import gzip
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist/"
SEFL_PARAMS = 649526          # params_build_cnn_se(r 8, fc1 gate): model.h
GATE_BIAS = 0.0               # MODEL_GATE_BIAS in common/nn/model.h
GATE_SCALE = 2.0              # GATE_SCALE in common/nn/layers.h


def read_idx(path):
    """An IDX file (gzip) as a numpy array of its declared shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fmnist(part):
    """Images (n, 1, 28, 28) in [0, 1] and labels (n) of `train` or `t10k`."""
    x = read_idx(f"{DATA}{part}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    y = read_idx(f"{DATA}{part}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class Excite(nn.Module):
    """The excitation: e = scale * sigmoid(fc2(relu(fc1(s)))), one gate per
    channel."""

    def __init__(self, c, r, scale):
        super().__init__()
        self.fc1 = nn.Linear(c, c // r)
        self.fc2 = nn.Linear(c // r, c)
        self.scale = scale

    def forward(self, s):
        return self.scale * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class SEMap(Excite):
    """SE on a feature map: squeeze by the spatial mean, scale each channel."""

    def forward(self, x):
        return x * super().forward(x.mean(dim=(2, 3)))[:, :, None, None]


class SEVec(Excite):
    """SE on a feature vector: the vector is its own squeeze."""

    def forward(self, f):
        return f * super().forward(f)


class CnnSe(nn.Module):
    def __init__(self, r=8, gate_bias=GATE_BIAS, gate_scale=GATE_SCALE):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.se1 = SEMap(32, r, gate_scale)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.se2 = SEMap(64, r, gate_scale)
        self.fc1 = nn.Linear(1024, 512)
        self.se3 = SEVec(512, r, gate_scale)
        self.fc = nn.Linear(512, 10)
        if gate_bias is not None:
            with torch.no_grad():
                for se in (self.se1, self.se2, self.se3):
                    se.fc2.bias.fill_(gate_bias)

    def forward(self, x):
        # The gate is positive, so SE before or after the max-pool is the
        # same function; sefl fuses the two in that order.
        x = F.max_pool2d(self.se1(F.relu(self.conv1(x))), 2)
        x = F.max_pool2d(self.se2(F.relu(self.conv2(x))), 2)
        x = self.se3(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc(x)


def make_net(gate_bias, gate_scale=GATE_SCALE):
    net = CnnSe(gate_bias=gate_bias, gate_scale=gate_scale)
    n = sum(p.numel() for p in net.parameters())
    if n != SEFL_PARAMS:
        sys.exit(f"torch_ref: the network has {n} parameters, sefl's cnn-se has "
                 f"{SEFL_PARAMS}; the two models differ, refusing to run")
    return net


def gate_bias_arg(s):
    return None if s == "default" else float(s)


def train_epoch(net, opt, x, y, batch, perm=None):
    """One epoch of mini-batch SGD; returns the mean training loss."""
    n = len(x)
    total = 0.0
    for i in range(0, n, batch):
        j = perm[i:i + batch] if perm is not None else slice(i, i + batch)
        opt.zero_grad()
        loss = F.cross_entropy(net(x[j]), y[j])
        loss.backward()
        opt.step()
        total += loss.item() * len(y[j])
    return total / max(n, 1)


def speed(a):
    x, y = fmnist("train")
    x, y = x[:a.samples], y[:a.samples]
    net = make_net(GATE_BIAS)
    opt = torch.optim.SGD(net.parameters(), lr=0.005)
    train_epoch(net, opt, x, y, a.batch)          # warm-up
    t0 = time.perf_counter()
    train_epoch(net, opt, x, y, a.batch)
    dt = time.perf_counter() - t0
    print(f"torch_version {torch.__version__}")
    print(f"params {SEFL_PARAMS}")
    print(f"threads {a.threads}")
    print(f"batch {a.batch}")
    print(f"samples {len(x)}")
    print(f"train_samples_per_s {len(x) / dt:.1f}")


def central(a):
    x, y = fmnist("train")
    tx, ty = fmnist("t10k")
    net = make_net(a.gate_bias, a.gate_scale)
    opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=a.momentum)
    for e in range(1, a.epochs + 1):
        train_epoch(net, opt, x, y, a.batch, torch.randperm(len(x)))
        with torch.no_grad():
            acc = (net(tx).argmax(1) == ty).float().mean().item()
        print(f"epoch {e} test_acc {acc:.4f}", flush=True)


def grads(a):
    x, y = fmnist("train")
    net = make_net(a.gate_bias, a.gate_scale)
    sums = {name: 0.0 for name, _ in net.named_parameters()}
    for k in range(a.batches):
        net.zero_grad()
        lo = k * a.batch
        F.cross_entropy(net(x[lo:lo + a.batch]), y[lo:lo + a.batch]).backward()
        for name, p in net.named_parameters():
            sums[name] += p.grad.norm().item()
    for name, s in sums.items():
        print(f"grad_norm_{name} {s / a.batches:.6g}")


def fed(a):
    """FedAvg of the shared tensors with private ones kept per client."""
    x1, y1 = fmnist("train")
    x2, y2 = fmnist("t10k")
    x, y = torch.cat([x1, x2]), torch.cat([y1, y2])
    g = torch.Generator().manual_seed(a.seed)
    perm = torch.randperm(len(x), generator=g)
    shards = perm.chunk(a.clients)
    clients = []
    for s in shards:
        ntr = int(0.75 * len(s))
        tr, te = s[:ntr][:a.max_samples], s[ntr:][:a.max_samples]
        clients.append((tr, te))
    torch.manual_seed(a.seed)
    glob = make_net(a.gate_bias, a.gate_scale).state_dict()

    def private(name):
        return a.private == "se" and name.startswith("se")

    states = [{k: v.clone() for k, v in glob.items()} for _ in clients]
    net = make_net(a.gate_bias, a.gate_scale)
    for rnd in range(1, a.rounds + 1):
        summed = {k: torch.zeros_like(v) for k, v in glob.items() if not private(k)}
        weight = 0
        for c, (tr, te) in enumerate(clients):
            net.load_state_dict({k: states[c][k] if private(k) else glob[k] for k in glob})
            opt = torch.optim.SGD(net.parameters(), lr=a.lr)
            train_epoch(net, opt, x[tr], y[tr], a.batch, torch.randperm(len(tr), generator=g))
            for k, v in net.state_dict().items():
                if private(k):
                    states[c][k] = v.clone()
                else:
                    summed[k] += v * len(tr)
            weight += len(tr)
        for k in summed:
            glob[k] = summed[k] / weight
        # As sefl's coordinator evaluates: the new global model with each
        # client's private tensors, accuracy weighted by test samples.
        right = seen = 0
        with torch.no_grad():
            for c, (tr, te) in enumerate(clients):
                net.load_state_dict({k: states[c][k] if private(k) else glob[k] for k in glob})
                right += (net(x[te]).argmax(1) == y[te]).sum().item()
                seen += len(te)
        print(f"round {rnd} weighted_accuracy {right / seen:.4f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["speed", "central", "grads", "fed"])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--samples", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--gate-bias", type=gate_bias_arg, default=GATE_BIAS)
    p.add_argument("--gate-scale", type=float, default=GATE_SCALE)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--max-samples", type=int, default=1 << 30)
    p.add_argument("--private", choices=["se", "none"], default="se")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    {"speed": speed, "central": central, "grads": grads, "fed": fed}[a.mode](a)


if __name__ == "__main__":
    main()
