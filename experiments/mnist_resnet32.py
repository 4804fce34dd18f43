"""MNIST with a 32-layer half-width ResNet (8/16/32 filters, 0.12M parameters), as in the seed
thesis: digits zero-padded to 32x32 (as for LeNet-5), random 2-pixel shifts, one-cycle SGD.

    python experiments/mnist_resnet32.py --data-dir DATA [--epochs 8]

Writes the run (history, weights), its learning curve, confusion matrix, the most confident
mistakes and saliency maps.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import curves, load, parser, table, train

import fastres
from fastres import metrics
from fastres.models import resnet_cifar

p = parser(__doc__, out="runs/mnist", epochs=8, train_size=None)
args = p.parse_args()

data = load("mnist", args, pad=2)
(x, y), _, (xt, yt), classes = data
model = resnet_cifar(32, base_width=8, in_channels=1, seed=args.seed)
name = "resnet32_half"
train(name, model, data, args, augment="shift:2")
if not Path(args.out, name, "final.npz").exists():
    sys.exit(0)
model = fastres.load(Path(args.out, name, "final.npz"))
curves(args, [name], "mnist_curves.png", "MNIST, ResNet-32 (half width)")
table(args, [name])
try:
    from fastres import analysis, plots
except ImportError as exc:
    sys.exit(f"(no figures: {exc})")
model.eval()
pred = np.concatenate([model.forward(xt[s:s + 500]).argmax(1) for s in range(0, len(xt), 500)])
plots.confusion_matrix(metrics.confusion_matrix(yt, pred, len(classes)), classes,
                       Path(args.out, "mnist_confusion.png"))
worst = analysis.misclassified(model, xt, yt, 16)
plots.misclassified_gallery(xt, worst, Path(args.out, "mnist_misclassified.png"), classes)
sal = analysis.saliency_map(model, xt[:8], yt[:8])
plots.saliency_grid(xt[:8], sal, Path(args.out, "mnist_saliency.png"))
print(f"wrote figures to {args.out}")
