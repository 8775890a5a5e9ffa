"""Models: ``Model`` (a Layer that can draw itself) and ready-made architectures.

``Sequential``, ``MLP`` (DeZero's), ``SmallCNN`` (digits / MNIST / CIFAR sized),
``SeqRegressor`` (an RNN/LSTM/GRU plus a linear read-out, DeZero's ``BetterRNN``), ``VGG16``
and ``ResNet`` 50/101/152. VGG16 and ResNet keep DeZero's layer names, so DeZero's pretrained
``.npz`` files load; ``pretrained`` takes a local path, or True to download once into a
cache directory (``mibun.utils.get_file``: ``$MIBUN_CACHE``, default ``~/.mibun``) with a short
timeout.
"""
from __future__ import annotations

import math
import os
import types

import numpy as np

import mibun.functions as F
import mibun.layers as L
from mibun import utils, visualize
from mibun.layers import Layer

__all__ = [
    "MLP", "VGG16", "Model", "ResNet", "ResNet50", "ResNet101", "ResNet152", "SeqRegressor",
    "Sequential", "SmallCNN",
]


class Model(Layer):
    """A Layer that is a whole network; ``plot`` draws its computational graph.

    A model owns its input format: ``forward_batch`` reads a mini-batch of whole examples,
    and ``recurrent`` says whether ``forward`` is one time step of a sequence instead.
    ``for_training`` is the model ``mibun train --model`` builds.
    """

    #: True for a model whose ``forward`` reads one time step and keeps its state until
    #: ``reset_state()``: ``mibun train`` feeds it a sequence in truncated-BPTT windows.
    recurrent = False

    @classmethod
    def for_training(cls, hidden_size: int, out_size: int) -> Model:
        """The model of this class that ``mibun train`` trains: ``out_size`` outputs (the
        classes, or 1 for a regression), ``hidden_size`` wide where it has a width."""
        raise NotImplementedError(f"{cls.__name__} is not one of mibun train's models")

    def plot(self, *inputs, to_file: str = "model.png"):
        """Run ``self(*inputs)`` and draw the graph of the output to ``to_file``.

        (Calling the model, not ``forward``, serves DeZero models that define ``__call__``.)
        """
        y = self(*inputs)
        return visualize.plot_dot_graph(y, verbose=True, to_file=to_file)

    def forward_batch(self, x):
        """The outputs for a mini-batch of whole examples, as a ``DataLoader`` yields them.

        A model whose ``forward`` wants another layout (flat vectors, a sequence of time
        steps) says here how it reads a batch; by default this is ``self(x)``.
        """
        return self(x)


class Sequential(Model):
    """Apply layers (or plain functions such as ``F.relu``) one after another.

    Layers are registered as ``l0, l1, ...`` (functions take no name).

    >>> np.random.seed(0)
    >>> model = Sequential(L.Linear(5), F.relu, L.Linear(2))
    >>> model(np.ones((3, 4), dtype=np.float32)).shape
    (3, 2)
    >>> [name for name, _ in model.named_params()]
    ['l0/W', 'l0/b', 'l2/W', 'l2/b']
    """

    def __init__(self, *layers):
        super().__init__()
        self.layers = []
        for layer in layers:
            self.append(layer)

    def append(self, layer) -> None:
        if not callable(layer):
            raise TypeError(f"Sequential: expected a Layer or a function, got "
                            f"{type(layer).__name__}")
        if isinstance(layer, Layer):
            setattr(self, f"l{len(self.layers)}", layer)
        self.layers.append(layer)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def extra_repr(self):
        names = {id(v): n for n, v in self.named_children()}
        return ", ".join(names.get(id(f)) or getattr(f, "__name__", type(f).__name__)
                         for f in self.layers)


class MLP(Model):
    """Multi-layer perceptron: Linear layers with ``activation`` between them (DeZero's).

    Args:
        fc_output_sizes (sequence of int): output size of each Linear layer; the last is the
            number of outputs (no activation after it).
        activation: function applied after every layer but the last (``F.sigmoid``).

    Shapes: ``x (N, in)`` -> ``y (N, fc_output_sizes[-1])``; layers ``l0, l1, ...``.

    >>> np.random.seed(0)
    >>> model = MLP((10, 3))
    >>> model(np.zeros((2, 4), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, fc_output_sizes, activation=F.sigmoid):
        super().__init__()
        if isinstance(fc_output_sizes, (str, bytes)) or not hasattr(fc_output_sizes, "__iter__"):
            raise TypeError(f"MLP: fc_output_sizes must be a sequence of ints such as (100, 10), "
                            f"got {type(fc_output_sizes).__name__}")
        fc_output_sizes = tuple(fc_output_sizes)
        if not fc_output_sizes:
            raise ValueError("MLP: fc_output_sizes is empty; give at least the output size")
        if not callable(activation):
            raise TypeError(f"MLP: activation must be a function such as F.relu, got "
                            f"{type(activation).__name__}")
        self.activation = activation
        self.layers = []
        for i, out_size in enumerate(fc_output_sizes):
            layer = L.Linear(out_size)
            setattr(self, "l" + str(i), layer)
            self.layers.append(layer)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)

    @classmethod
    def for_training(cls, hidden_size, out_size):
        """One hidden layer of ``hidden_size`` with relu."""
        return cls((hidden_size, out_size), activation=F.relu)

    def forward_batch(self, x):
        """``self(x)`` on examples flattened to vectors: images ``(N, C, H, W)`` -> ``(N, CHW)``."""
        return self(x.reshape(len(x), -1) if x.ndim > 2 else x)

    def extra_repr(self):
        return f"activation={getattr(self.activation, '__name__', self.activation)}"


class SmallCNN(Model):
    """A small convolutional classifier for (N, C, H, W) images with H, W >= 4.

    ``conv 3x3 (32) - relu - max-pool 2 - conv 3x3 (64) - relu - max-pool 2 - linear 128 -
    relu - linear num_classes``. Input channels and the flattened size are inferred on the
    first call, so it serves 8x8 digits, 28x28 MNIST and 3-channel 32x32 CIFAR alike.

    Args:
        num_classes (int): number of outputs (class scores, before softmax).
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = L.Conv2d(32, 3, stride=1, pad=1)
        self.conv2 = L.Conv2d(64, 3, stride=1, pad=1)
        self.fc3 = L.Linear(128)
        self.fc4 = L.Linear(num_classes)

    @classmethod
    def for_training(cls, hidden_size, out_size):
        """Its own widths (``hidden_size`` is not used)."""
        return cls(num_classes=out_size)

    def forward(self, x):
        x = F.pooling(F.relu(self.conv1(x)), 2, 2)
        x = F.pooling(F.relu(self.conv2(x)), 2, 2)
        x = F.reshape(x, (x.shape[0], -1))
        x = F.relu(self.fc3(x))
        return self.fc4(x)


class SeqRegressor(Model):
    """A recurrent cell plus a linear read-out, one time step per call (DeZero's BetterRNN).

    Args:
        hidden_size (int): the cell's state size.
        out_size (int): outputs per step.
        cell (str): ``'rnn'``, ``'lstm'`` or ``'gru'``.

    Shapes: ``x (N, in)`` (one time step) -> ``y (N, out_size)``. Call ``reset_state()``
    before each new sequence.
    """

    _cells = types.MappingProxyType({"rnn": L.RNN, "lstm": L.LSTM, "gru": L.GRU})
    recurrent = True  # forward: one time step (forward_batch reads an image row by row)

    def __init__(self, hidden_size: int, out_size: int = 1, cell: str = "lstm"):
        super().__init__()
        if cell not in self._cells:
            raise ValueError(f"SeqRegressor: cell must be one of 'rnn', 'lstm', 'gru'; "
                             f"got {cell!r}")
        self.cell_type = cell
        self.rnn = self._cells[cell](hidden_size)
        self.fc = L.Linear(out_size)

    @classmethod
    def for_training(cls, hidden_size, out_size):
        """An LSTM of ``hidden_size``."""
        return cls(hidden_size, out_size=out_size, cell="lstm")

    def reset_state(self) -> None:
        self.rnn.reset_state()  # type: ignore[attr-defined]

    def forward(self, x):
        return self.fc(self.rnn(x))

    def forward_batch(self, x):
        """Read each image of ``x`` as a sequence of rows; return the output after the last.

        ``x`` is ``(N, H, W)``, ``(N, C, H, W)`` (a row: ``C * W`` features) or ``(N, H * W)``
        (square images, flattened). Resets the state first.

        >>> np.random.seed(0)
        >>> SeqRegressor(8, out_size=10).forward_batch(np.zeros((5, 1, 4, 4), np.float32)).shape
        (5, 10)
        """
        if x.ndim == 2:  # flattened square images
            side = round(math.sqrt(x.shape[1]))
            x = x.reshape(x.shape[0], side, side)
        elif x.ndim == 4:  # (N, C, H, W) -> (N, H, C * W)
            x = x.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
        self.reset_state()
        y = None
        for row in x.transpose(1, 0, 2):  # (H, N, features): one time step per row
            y = self(row)
        return y

    def extra_repr(self):
        return f"cell={self.cell_type!r}"


# =============================================================================
# Pretrained weights
# =============================================================================
def _load_pretrained(model: Layer, pretrained, url: str) -> None:
    path: str | os.PathLike
    if pretrained is True:
        name = url.rsplit("/", 1)[-1]
        try:
            path = utils.get_file(url)
        except ConnectionError as e:
            raise ConnectionError(
                f"{type(model).__name__}(pretrained=True): {e}\n  Or fetch the file "
                f"elsewhere and pass its path: pretrained='path/to/{name}'") from e
    elif isinstance(pretrained, (str, os.PathLike)):
        path = pretrained
    else:
        raise TypeError(f"{type(model).__name__}: pretrained must be False, True or a path, "
                        f"got {pretrained!r}")
    model.load_weights(path)


# =============================================================================
# VGG16
# =============================================================================
class VGG16(Model):
    """VGG-16 (Simonyan & Zisserman 2014) with DeZero's layer names.

    Thirteen 3x3 convolutions in five blocks, each block followed by 2x2 max pooling,
    then ``fc6 (4096) - fc7 (4096) - fc8 (1000)`` with ReLU and dropout. ``fc6``'s input size
    is inferred on the first call (25088 for 224x224 images).

    Args:
        pretrained (bool or str): False; True downloads DeZero's ImageNet weights into the
            cache; a path loads that file.

    Shapes: ``x (N, 3, H, W)`` (BGR, mean-subtracted: see ``preprocess``) -> ``(N, 1000)``.
    """

    WEIGHTS_PATH = "https://github.com/koki0702/dezero-models/releases/download/v0.1/vgg16.npz"
    _blocks = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def __init__(self, pretrained=False):
        super().__init__()
        in_channels = 3
        self._convs = []
        for b, (channels, n) in enumerate(self._blocks, start=1):
            names = []
            for k in range(1, n + 1):
                name = f"conv{b}_{k}"
                setattr(self, name, L.Conv2d(channels, 3, 1, 1, in_channels=in_channels))
                in_channels = channels
                names.append(name)
            self._convs.append(names)
        self.fc6 = L.Linear(4096)
        self.fc7 = L.Linear(4096, in_size=4096)
        self.fc8 = L.Linear(1000, in_size=4096)
        if pretrained:
            _load_pretrained(self, pretrained, VGG16.WEIGHTS_PATH)

    def forward(self, x):
        for names in self._convs:
            for name in names:
                x = F.relu(getattr(self, name)(x))
            x = F.pooling(x, 2, 2)
        x = F.reshape(x, (x.shape[0], -1))
        x = F.dropout(F.relu(self.fc6(x)))
        x = F.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)

    @staticmethod
    def preprocess(image, size=(224, 224), dtype=np.float32):
        """A PIL image -> a ``(3, H, W)`` BGR array minus the ImageNet channel means."""
        image = image.convert("RGB")
        if size:
            image = image.resize(size)
        image = np.asarray(image, dtype=dtype)
        image = image[:, :, ::-1]
        image = image - np.array([103.939, 116.779, 123.68], dtype=dtype)
        return np.ascontiguousarray(image.transpose((2, 0, 1)))


# =============================================================================
# ResNet
# =============================================================================
class ResNet(Model):
    """ResNet (He et al. 2015) with bottleneck blocks, DeZero's layer names.

    ``conv1 7x7/2 - bn1 - relu - max-pool 3/2 - res2..res5 - global average pool - fc6``.
    Downsampling by stride 2 happens at the start of res3, res4 and res5 (on the first 1x1
    convolution, as in the original MSRA model); DeZero also downsampled in res2 (it passed
    the stride where a flag was expected), which changes the features but not the weights.

    Args:
        n_layers (int): 50, 101 or 152.
        pretrained (bool or str): False; True downloads DeZero's ImageNet weights into the
            cache; a path loads that file.

    Shapes: ``x (N, 3, H, W)`` -> ``(N, 1000)``.
    """

    WEIGHTS_PATH = "https://github.com/koki0702/dezero-models/releases/download/v0.1/resnet{}.npz"
    _depths = types.MappingProxyType({50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                                      152: (3, 8, 36, 3)})

    def __init__(self, n_layers: int = 152, pretrained=False):
        super().__init__()
        if n_layers not in self._depths:
            raise ValueError(f"ResNet: n_layers must be 50, 101 or 152, got {n_layers!r}")
        self.n_layers = n_layers
        block = self._depths[n_layers]
        self.conv1 = L.Conv2d(64, 7, 2, 3, in_channels=3)
        self.bn1 = L.BatchNorm(in_size=64)
        self.res2 = BuildingBlock(block[0], 64, 64, 256, 1)
        self.res3 = BuildingBlock(block[1], 256, 128, 512, 2)
        self.res4 = BuildingBlock(block[2], 512, 256, 1024, 2)
        self.res5 = BuildingBlock(block[3], 1024, 512, 2048, 2)
        self.fc6 = L.Linear(1000, in_size=2048)
        if pretrained:
            _load_pretrained(self, pretrained, ResNet.WEIGHTS_PATH.format(n_layers))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.pooling(x, kernel_size=3, stride=2)
        x = self.res2(x)
        x = self.res3(x)
        x = self.res4(x)
        x = self.res5(x)
        x = F.mean(x, axis=(2, 3))  # global average pooling: (N, C, H, W) -> (N, C)
        return self.fc6(x)

    def extra_repr(self):
        return f"n_layers={self.n_layers}"


class ResNet50(ResNet):
    """ResNet-50; see ``ResNet``."""

    def __init__(self, pretrained=False):
        super().__init__(50, pretrained)


class ResNet101(ResNet):
    """ResNet-101; see ``ResNet``."""

    def __init__(self, pretrained=False):
        super().__init__(101, pretrained)


class ResNet152(ResNet):
    """ResNet-152; see ``ResNet``."""

    def __init__(self, pretrained=False):
        super().__init__(152, pretrained)


class BuildingBlock(Layer):
    """One ResNet stage: a projecting bottleneck ``a`` then ``n_layers - 1`` identity ones."""

    def __init__(self, n_layers, in_channels, mid_channels, out_channels, stride=1,
                 downsample_fb=False):
        super().__init__()
        self.a = BottleneckA(in_channels, mid_channels, out_channels, stride, downsample_fb)
        self._forward = ["a"]
        for i in range(1, n_layers):
            name = f"b{i}"
            setattr(self, name, BottleneckB(out_channels, mid_channels))
            self._forward.append(name)

    def forward(self, x):
        for name in self._forward:
            x = getattr(self, name)(x)
        return x


class BottleneckA(Layer):
    """1x1 - 3x3 - 1x1 bottleneck with a projection shortcut (``conv4``)."""

    def __init__(self, in_channels, mid_channels, out_channels, stride=2, downsample_fb=False):
        super().__init__()
        # The MSRA model strides on the first 1x1 convolution; Facebook's on the 3x3.
        stride_1x1, stride_3x3 = (1, stride) if downsample_fb else (stride, 1)
        C, M, O = in_channels, mid_channels, out_channels
        self.conv1 = L.Conv2d(M, 1, stride_1x1, 0, nobias=True, in_channels=C)
        self.bn1 = L.BatchNorm(in_size=M)
        self.conv2 = L.Conv2d(M, 3, stride_3x3, 1, nobias=True, in_channels=M)
        self.bn2 = L.BatchNorm(in_size=M)
        self.conv3 = L.Conv2d(O, 1, 1, 0, nobias=True, in_channels=M)
        self.bn3 = L.BatchNorm(in_size=O)
        self.conv4 = L.Conv2d(O, 1, stride, 0, nobias=True, in_channels=C)
        self.bn4 = L.BatchNorm(in_size=O)

    def forward(self, x):
        h1 = F.relu(self.bn1(self.conv1(x)))
        h1 = F.relu(self.bn2(self.conv2(h1)))
        h1 = self.bn3(self.conv3(h1))
        h2 = self.bn4(self.conv4(x))
        return F.relu(h1 + h2)


class BottleneckB(Layer):
    """1x1 - 3x3 - 1x1 bottleneck with an identity shortcut."""

    def __init__(self, in_channels, mid_channels):
        super().__init__()
        C, M = in_channels, mid_channels
        self.conv1 = L.Conv2d(M, 1, 1, 0, nobias=True, in_channels=C)
        self.bn1 = L.BatchNorm(in_size=M)
        self.conv2 = L.Conv2d(M, 3, 1, 1, nobias=True, in_channels=M)
        self.bn2 = L.BatchNorm(in_size=M)
        self.conv3 = L.Conv2d(C, 1, 1, 0, nobias=True, in_channels=M)
        self.bn3 = L.BatchNorm(in_size=C)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + x)
