"""ResNet-20 on CIFAR-10 as in He et al. 2016 (sec. 4.2): SGD momentum 0.9, weight decay 1e-4,
batch 128, lr 0.1 divided by 10 at 50% and 75% of training, 4-pixel-pad crops and flips.

    python examples/train_cifar10.py --data-dir ~/data [--epochs 164]

Re-running the same command resumes from runs/cifar10/checkpoint.npz.
"""

import argparse

from fastres.data import channel_stats, load_dataset, normalize
from fastres.models import resnet20
from fastres.optim import SGD, MultiStepLR
from fastres.solver import evaluate, fit

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default=None)
p.add_argument("--epochs", type=int, default=164)
args = p.parse_args()

ds = load_dataset("cifar10", args.data_dir, val_split=5000, seed=0)
mean, std = channel_stats(ds.x_train)
x_train, x_val, x_test = (normalize(x, mean, std) for x in (ds.x_train, ds.x_val, ds.x_test))

model = resnet20(num_classes=10, seed=0)
opt = SGD(model.named_parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
sched = MultiStepLR(opt, [args.epochs // 2, 3 * args.epochs // 4])
fit(model, (x_train, ds.y_train), (x_val, ds.y_val), opt, sched, epochs=args.epochs,
    batch_size=128, augment="crop,flip", out_dir="runs/cifar10", resume=True)
r = evaluate(model, x_test, ds.y_test)
print(f"test top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%")
