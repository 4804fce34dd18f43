"""CIFAR ResNets of depth 8 to 56 (6n + 2) on the same short schedule: accuracy and time vs depth.

    python experiments/depth_sweep.py --data-dir DATA [--depths 8 14 20 32 44 56]

Short schedule: a stratified 10,000-image subset, 8 epochs of one-cycle SGD, crop+flip.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curves, load, parser, table, train

from fastres.models import resnet_cifar

p = parser(__doc__, out="runs/depth_sweep", epochs=8, train_size=10000)
p.add_argument("--depths", type=int, nargs="+", default=[8, 14, 20, 32, 44, 56])
args = p.parse_args()

data = load("cifar10", args)
names = [f"resnet{d}" for d in args.depths]
for d, name in zip(args.depths, names):
    train(name, resnet_cifar(d, seed=args.seed), data, args, augment="crop,flip")
curves(args, names, "depth_sweep.png", "CIFAR-10: ResNet depth sweep")
table(args, names)
