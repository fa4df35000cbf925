#!/usr/bin/env python3
"""Eager fp32 PyTorch twin of cg's CIFAR-style ResNet-20 (option A) and CosineGate-20 (`cir+ctrl`
gates), timed as cg times a run: one epoch of training (batching, forward, loss, backward, SGD step),
then dense inference over the test digits. Prints one JSON line per model with train and infer img/s.

Used by scripts/bench-vs-torch.sh; the network, the gate, the loss and the data follow
crates/cg-model/src/{model,train}.rs and METHOD.md (consistency loss off). Needs only torch.

    python3 scripts/torch_bench.py --data ../shared/data/mnist-10k --images 2560 --batch 128
"""

import argparse
import gzip
import json
import math
import os
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8)
    return data.reshape(dims)


def load_digits(folder, split, limit, seed):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")).long()
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(labels), generator=g)[:limit]
    x = images[pick].float().div(255.0)
    x = (x - x.mean()) / x.std()
    x = F.pad(x, (2, 2, 2, 2)).unsqueeze(1)  # 28x28 -> 32x32, one channel (as cg pads MNIST)
    return x.contiguous(), labels[pick]


def conv3x3(cin, cout, stride):
    conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class Gate(nn.Module):
    """logit = (CIR - threshold) * cir_scale + W2 relu(W1 GAP(shortcut) + b1) + b2."""

    def __init__(self, channels, hidden=16, threshold=1.0, cir_scale=5.0, bias_init=3.0):
        super().__init__()
        self.ctrl_in = nn.Linear(channels, hidden)
        self.ctrl_out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.ctrl_out.weight)
        nn.init.constant_(self.ctrl_out.bias, bias_init)
        self.threshold, self.cir_scale = threshold, cir_scale

    def forward(self, short, cir):
        ctrl = self.ctrl_out(F.relu(self.ctrl_in(short.mean((2, 3))))).reshape(-1)
        return (cir - self.threshold) * self.cir_scale + ctrl


class Block(nn.Module):
    def __init__(self, cin, cout, stride, gated):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout, 1), nn.BatchNorm2d(cout)
        self.stride, self.cin, self.cout = stride, cin, cout
        self.gate = Gate(cout) if gated else None

    def shortcut(self, x):  # option A: subsample, zero-pad the new channels on both sides
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.cout - self.cin
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2)) if extra else x

    def forward(self, x, tau):
        short = self.shortcut(x)
        f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.gate is None:
            return F.relu(short + f), None
        a, b = short.flatten(1), f.flatten(1)
        cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
        z = self.gate(short, 1.0 - cos)
        if self.training:
            u = torch.rand_like(z).clamp(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((z + u.log() - (1 - u).log()) / tau)
            g = soft + ((soft > 0.5).float() - soft).detach()  # straight-through hard gate
        else:
            g = (torch.sigmoid(z) >= 0.5).float()
        return F.relu(short + f * g.reshape(-1, 1, 1, 1)), g


class Net(nn.Module):
    def __init__(self, gated, depth=20, width=16, in_channels=1, classes=10, side=32):
        super().__init__()
        n = (depth - 2) // 6
        self.stem_conv, self.stem_bn = conv3x3(in_channels, width, 1), nn.BatchNorm2d(width)
        blocks, self.branch_macs, cin, s = [], [], width, side
        self.macs_full = in_channels * width * 9 * side * side + 4 * width * classes
        for stage in range(3):
            cout = width << stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                s = (s + stride - 1) // stride
                is_gated = gated and stride == 1 and cin == cout
                blocks.append(Block(cin, cout, stride, is_gated))
                macs = (cin * cout * 9 + cout * cout * 9) * s * s
                self.macs_full += macs
                if is_gated:
                    self.branch_macs.append(macs)
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x, tau=1.0):
        h = F.relu(self.stem_bn(self.stem_conv(x)))
        gates = []
        for b in self.blocks:
            h, g = b(h, tau)
            if g is not None:
                gates.append(g)
        return self.fc(h.mean((2, 3))), gates


def train_epoch(net, x, y, batch, seed, weight_decay=5e-4):
    decay = [p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() > 1]
    rest = [p for n, p in net.named_parameters() if not (n.endswith("weight") and p.dim() > 1)]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=0.1 * batch / 128,
        momentum=0.9,
    )
    net.train()
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    order = torch.randperm(len(y), generator=g)
    steps = len(y) // batch
    macs_fixed = net.macs_full - sum(net.branch_macs)
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        xb, yb = x[idx], y[idx]
        p = step / steps
        tau = 2.0 * (0.5 / 2.0) ** p
        lam = 0.0 if p < 0.1 else 0.5 * min(1.0, (p - 0.1) / 0.4)
        logits, gates = net(xb, tau)
        loss = F.cross_entropy(logits, yb)
        if gates:
            executed = macs_fixed + sum(gk.mean() * m for gk, m in zip(gates, net.branch_macs))
            loss = loss + lam * executed / net.macs_full
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 0:
            first_loss = loss.item()
    final_loss = loss.item()
    secs = time.perf_counter() - start
    return steps * batch / secs, first_loss, final_loss


@torch.no_grad()
def infer(net, x, batch):
    net.eval()
    start = time.perf_counter()
    correct = 0
    for i in range(0, len(x), batch):
        logits, _ = net(x[i : i + batch])
        correct += int(logits.argmax(1).numel())
    return len(x) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../shared/data/mnist-10k"))
    ap.add_argument("--images", type=int, default=2560)
    ap.add_argument("--test-images", type=int, default=2004)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--models", default="cosinegate,resnet")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y = load_digits(args.data, "train", args.images, args.seed)
    xt, _ = load_digits(args.data, "test", args.test_images, args.seed + 1)
    for model in args.models.split(","):
        net = Net(gated=(model == "cosinegate"))
        train, first, last = train_epoch(net, x, y, args.batch, args.seed)
        inf = infer(net, xt, max(64, min(256, args.batch)))
        print(
            json.dumps(
                {
                    "model": f"{model}20",
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "train_img_per_s": round(train, 1),
                    "infer_img_per_s": round(inf, 1),
                    "first_loss": round(first, 4),
                    "final_loss": round(last, 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
