"""Plain vs residual nets at two depths on CIFAR-10: the degradation effect (He et al. 2015,
fig. 6). The deeper plain net trains to a *higher* training error than the shallower one; with
identity shortcuts (option A) the deeper net is better instead.

    python experiments/plain_vs_residual.py --data-dir DATA [--depths 20 56] [--nets plain resnet]

Short schedule (stated in docs/EXPERIMENTS.md): a stratified 10,000-image subset, 8 epochs of
one-cycle SGD, crop+flip. Runs are resumable; run two processes with different --nets and
--threads 1 to use both cores.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curves, load, parser, table, train

from fastres.models import plain_cifar, resnet_cifar

p = parser(__doc__, out="runs/plain_vs_residual", epochs=8, train_size=10000)
p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
p.add_argument("--nets", nargs="+", choices=["plain", "resnet"], default=["plain", "resnet"])
args = p.parse_args()

data = load("cifar10", args)
for net in args.nets:
    for d in args.depths:
        build = plain_cifar if net == "plain" else resnet_cifar
        train(f"{net}{d}", build(d, seed=args.seed), data, args, augment="crop,flip")
for net in ("plain", "resnet"):
    curves(args, [f"{net}{d}" for d in args.depths], f"{net}.png",
           f"CIFAR-10, {net} nets (dashed: training error, solid: test error)")
names = [f"{n}{d}" for n in ("plain", "resnet") for d in args.depths]
curves(args, names, "plain_vs_residual.png", "CIFAR-10: plain vs residual")
table(args, names)
