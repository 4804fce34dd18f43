"""Train ResNet-8 on the MNIST subset bundled with fastres, using the library API directly.

    python examples/train_mnist.py
"""

from fastres.data import channel_stats, load_dataset, normalize
from fastres.models import resnet_cifar
from fastres.optim import SGD, OneCycle, no_bn_bias
from fastres.solver import evaluate, fit

ds = load_dataset("embedded")  # 6000 train / 1000 test MNIST digits, 1x28x28
mean, std = channel_stats(ds.x_train)
x_train, x_test = normalize(ds.x_train, mean, std), normalize(ds.x_test, mean, std)

model = resnet_cifar(8, num_classes=10, in_channels=1, seed=0)
opt = SGD(model.named_parameters(), 0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
          decay_filter=no_bn_bias)
epochs, batch_size = 4, 64
sched = OneCycle(opt, epochs * -(-len(x_train) // batch_size))
fit(model, (x_train, ds.y_train), None, opt, sched, epochs=epochs, batch_size=batch_size,
    out_dir="runs/mnist", resume=True, on_epoch=print)
r = evaluate(model, x_test, ds.y_test)
print(f"test top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%")
