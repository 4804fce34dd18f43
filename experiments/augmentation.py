"""ResNet-20 on CIFAR-10 with and without data augmentation (4-pixel-pad crops + flips).

    python experiments/augmentation.py --data-dir DATA

Short schedule: a stratified 10,000-image subset, 8 epochs of one-cycle SGD.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curves, load, parser, table, train

from fastres.models import resnet_cifar

p = parser(__doc__, out="runs/augmentation", epochs=8, train_size=10000)
args = p.parse_args()

data = load("cifar10", args)
runs = {"resnet20_none": None, "resnet20_crop_flip": "crop,flip"}
for name, aug in runs.items():
    train(name, resnet_cifar(20, seed=args.seed), data, args, augment=aug)
curves(args, list(runs), "augmentation.png", "CIFAR-10 ResNet-20: augmentation")
table(args, list(runs))
