"""The CNN pack's case tables, shared by tests/test_cnn.py and tests/test_cnn_torch_oracle.py.

``PRIMITIVE_CASES`` are ``helpers.Case`` entries: each primitive with a forward pass written
here with plain NumPy loops (independent of ``mytorch.nn.functional_cnn``) and its PyTorch
twin. ``MODULE_CASES`` build each module and the ``torch.nn`` module it must equal.
PyTorch is imported only inside the torch twins, so this file loads without it.
"""
import numpy as np

from helpers import Case, make_input
from mytorch import nn
from mytorch.nn import functional_cnn as F


def _torch():
    import torch

    return torch


# --------------------------------------------------------------------------- NumPy references (loops)
def ref_conv(x, W, b):
    """Stride-1 cross-correlation over the spatial axes, one output position at a time."""
    kernel = W.shape[2:]
    out_size = tuple(n - k + 1 for n, k in zip(x.shape[2:], kernel))
    out = np.zeros(x.shape[:1] + W.shape[:1] + out_size, dtype=np.result_type(x, W, b))
    contracted = list(range(1, 2 + len(kernel)))  # the channel and kernel axes of a window and of W
    for position in np.ndindex(*out_size):
        window = x[(slice(None), slice(None)) + tuple(slice(p, p + k) for p, k in zip(position, kernel))]
        out[(slice(None), slice(None)) + position] = np.tensordot(window, W, axes=(contracted, contracted)) + b
    return out


def ref_pool(x, kernel_size, stride, reduce):
    """2-D pooling, one window at a time: ``reduce`` is np.max or np.mean."""
    out_size = tuple((n - kernel_size) // stride + 1 for n in x.shape[2:])
    out = np.zeros(x.shape[:2] + out_size, dtype=x.dtype)
    for i, j in np.ndindex(*out_size):
        window = x[:, :, i * stride:i * stride + kernel_size, j * stride:j * stride + kernel_size]
        out[:, :, i, j] = reduce(window, axis=(2, 3))
    return out


def ref_upsample(x, factor):
    """Zero insertion: out[..., i * factor, ...] = x[..., i, ...], zeros elsewhere."""
    out = np.zeros(x.shape[:2] + tuple((n - 1) * factor + 1 for n in x.shape[2:]), dtype=x.dtype)
    for position in np.ndindex(*x.shape[2:]):
        out[(slice(None), slice(None)) + tuple(p * factor for p in position)] = \
            x[(slice(None), slice(None)) + position]
    return out


# --------------------------------------------------------------------------- PyTorch twins
def t_downsample(x, factor):
    """Keep every factor-th entry: average pooling over 1-wide windows, factor apart."""
    TF = _torch().nn.functional
    pool = TF.avg_pool1d if x.dim() == 3 else TF.avg_pool2d
    return pool(x, kernel_size=1, stride=factor)


def t_upsample(x, factor):
    """Zero insertion: a transposed convolution with a 1-wide kernel of ones, per channel."""
    torch = _torch()
    dims = x.dim() - 2
    ones = torch.ones((x.shape[1], 1) + (1,) * dims, dtype=x.dtype)
    transpose = torch.nn.functional.conv_transpose1d if dims == 1 else torch.nn.functional.conv_transpose2d
    return transpose(x, ones, stride=factor, groups=x.shape[1])


def t_pad(x, padding):
    return _torch().nn.functional.pad(x, (padding, padding) * (x.dim() - 2))


def _out(inputs, out):
    return {"out": out}


# --------------------------------------------------------------------------- the primitive table
def _build_primitive_cases():
    cases = []
    add = cases.append
    conv = {1: (F.conv1d_stride1_backward, "conv1d"), 2: (F.conv2d_stride1_backward, "conv2d")}
    conv_shapes = [  # x, W: batch 1 and more, one and several channels, kernel = input, 1x1, non-square
        ((1, 1, 5), (1, 1, 3)), ((3, 2, 7), (4, 2, 3)), ((2, 3, 4), (2, 3, 4)), ((2, 3, 5), (4, 3, 1)),
        ((1, 1, 5, 5), (1, 1, 3, 3)), ((2, 3, 6, 5), (4, 3, 3, 2)), ((2, 2, 3, 4), (3, 2, 3, 4)),
        ((3, 2, 4, 4), (2, 2, 1, 1)), ((2, 1, 6, 7), (3, 1, 5, 5)),
    ]
    for xs, ws in conv_shapes:
        primitive, name = conv[len(xs) - 2]
        add(Case(f"{name}-x{xs}-W{ws}", primitive, ref_conv, [xs, ws, ws[:1]],
                 torch_forward=(lambda n: lambda x, W, b: getattr(_torch().nn.functional, n)(x, W, b))(name)))

    resampling = [
        ("downsampling1d", F.downsampling1d_backward, lambda f: lambda x: x[..., ::f]),
        ("downsampling2d", F.downsampling2d_backward, lambda f: lambda x: x[..., ::f, ::f]),
        ("upsampling1d", F.upsampling1d_backward, lambda f: lambda x: ref_upsample(x, f)),
        ("upsampling2d", F.upsampling2d_backward, lambda f: lambda x: ref_upsample(x, f)),
    ]
    sizes = {1: [((2, 3, 7), 2), ((2, 3, 7), 3), ((1, 1, 5), 1), ((2, 2, 4), 5)],
             2: [((2, 3, 7, 6), 2), ((1, 2, 5, 4), 3), ((1, 1, 3, 3), 1), ((2, 1, 2, 3), 4)]}
    for name, primitive, forward in resampling:
        t_forward = t_downsample if name.startswith("down") else t_upsample
        for shape, factor in sizes[int(name[-2])]:
            add(Case(f"{name}-{shape}-factor{factor}", primitive, forward(factor), [shape],
                     torch_forward=(lambda t, f: lambda x: t(x, f))(t_forward, factor), kwargs={"factor": factor}))

    for shape, padding in [((2, 3, 4), 1), ((1, 2, 3), 3), ((2, 3, 4, 5), 1), ((1, 1, 2, 3), 2), ((2, 1, 3, 3), 0)]:
        add(Case(f"pad-{shape}-padding{padding}", F.pad_backward,
                 (lambda p: lambda x: np.pad(x, [(0, 0), (0, 0)] + [(p, p)] * (x.ndim - 2)))(padding), [shape],
                 torch_forward=(lambda p: lambda x: t_pad(x, p))(padding), kwargs={"padding": padding}))

    for shape in [(2, 3, 4, 5), (1, 2, 3), (3, 4), (2, 1, 1, 1)]:
        add(Case(f"flatten-{shape}", F.flatten_backward, lambda x: x.reshape(len(x), -1), [shape],
                 torch_forward=lambda x: _torch().flatten(x, 1)))

    pools = [  # x shape, kernel, stride: even, leftover rows, overlapping, gaps, kernel = input
        ((2, 3, 6, 6), 2, 2), ((2, 3, 7, 5), 2, 2), ((1, 2, 7, 7), 3, 2), ((2, 1, 5, 6), 2, 1),
        ((2, 2, 7, 6), 2, 3), ((1, 1, 4, 4), 4, 4), ((1, 2, 5, 3), 3, 1),
    ]
    for shape, k, s in pools:
        options = {"kernel_size": k, "stride": s}
        for pass_out in (False, True):
            add(Case(f"maxpool2d-{shape}-k{k}-s{s}{'-out' if pass_out else ''}", F.maxpool2d_backward,
                     (lambda k, s: lambda x: ref_pool(x, k, s, np.max))(k, s), [shape],
                     torch_forward=(lambda k, s: lambda x: _torch().nn.functional.max_pool2d(x, k, s))(k, s),
                     kwargs=options, kinds=["distinct"], extra_kwargs=_out if pass_out else None))
        add(Case(f"meanpool2d-{shape}-k{k}-s{s}", F.meanpool2d_backward,
                 (lambda k, s: lambda x: ref_pool(x, k, s, np.mean))(k, s), [shape],
                 torch_forward=(lambda k, s: lambda x: _torch().nn.functional.avg_pool2d(x, k, s))(k, s),
                 kwargs=options))
    return cases


PRIMITIVE_CASES = _build_primitive_cases()

# The forward function mytorch ships for each primitive (checked against the references above).
FORWARDS = {
    F.conv1d_stride1_backward: lambda x, W, b, **_: F.conv1d_stride1(x, W, b),
    F.conv2d_stride1_backward: lambda x, W, b, **_: F.conv2d_stride1(x, W, b),
    F.downsampling1d_backward: F.downsampling1d,
    F.downsampling2d_backward: F.downsampling2d,
    F.upsampling1d_backward: F.upsampling1d,
    F.upsampling2d_backward: F.upsampling2d,
    F.pad_backward: F.pad,
    F.flatten_backward: F.flatten,
    F.maxpool2d_backward: lambda x, kernel_size, stride, out=None: F.maxpool2d(x, kernel_size, stride),
    F.meanpool2d_backward: F.meanpool2d,
}


# --------------------------------------------------------------------------- the module table
class ModuleCase:
    """One module check: ``make(engine, rng, dtype)`` builds it, ``torch_make(module)`` its torch twin.

    The twin is a float64 ``torch.nn`` module holding a copy of the module's parameters.
    ``shape`` and ``kind`` describe the input batch.
    """

    def __init__(self, name, make, shape, torch_make, kind="normal"):
        self.name, self.make, self.shape, self.torch_make, self.kind = name, make, tuple(shape), torch_make, kind

    def input(self, dtype, seed=0):
        return make_input(self.kind, self.shape, np.random.default_rng(seed)).astype(dtype)

    def __repr__(self):
        return self.name


def _torch_conv(module):
    """torch.nn.Conv1d/Conv2d with the module's configuration and a float64 copy of W and b."""
    torch = _torch()
    layer = getattr(torch.nn, type(module).__name__)(
        module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
        padding=module.padding).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(module.W.astype(np.float64)))
        layer.bias.copy_(torch.from_numpy(module.b.astype(np.float64)))
    return layer


def _conv_case(cls, args, shape, stride=1, padding=0):
    return ModuleCase(
        f"{cls.__name__}{args}-stride{stride}-padding{padding}-x{shape}",
        lambda engine, rng, dtype: cls(*args, stride=stride, padding=padding, autograd_engine=engine, rng=rng,
                                       dtype=dtype),
        shape, _torch_conv)


def _build_module_cases():
    torch_nn = lambda name, *args: lambda module: getattr(_torch().nn, name)(*args)  # noqa: E731
    cases = [
        _conv_case(nn.Conv1d, (2, 3, 3), (4, 2, 7)),
        _conv_case(nn.Conv1d, (1, 1, 5), (1, 1, 5)),
        _conv_case(nn.Conv1d, (3, 2, 3), (2, 3, 8), stride=2),
        _conv_case(nn.Conv1d, (2, 4, 2), (3, 2, 7), stride=3, padding=2),
        _conv_case(nn.Conv1d, (1, 2, 1), (2, 1, 4), padding=1),
        _conv_case(nn.Conv2d, (1, 2, 3), (1, 1, 5, 5)),
        _conv_case(nn.Conv2d, (3, 4, 3), (2, 3, 7, 6), stride=2, padding=1),
        _conv_case(nn.Conv2d, (2, 3, 4), (2, 2, 4, 4)),
        _conv_case(nn.Conv2d, (2, 2, 3), (2, 2, 8, 7), stride=3),
        _conv_case(nn.Conv2d, (2, 3, 2), (3, 2, 3, 5), padding=2),
    ]
    for kernel, stride, shape in [(2, None, (2, 3, 6, 6)), (3, 2, (2, 2, 7, 5)), (2, 1, (1, 2, 4, 5)),
                                  (2, 3, (2, 1, 7, 8))]:
        args = (kernel,) if stride is None else (kernel, stride)
        cases.append(ModuleCase(f"MaxPool2d{args}-x{shape}",
                                (lambda a: lambda engine, rng, dtype: nn.MaxPool2d(*a, autograd_engine=engine))(args),
                                shape, torch_nn("MaxPool2d", *args), kind="distinct"))
        cases.append(ModuleCase(f"MeanPool2d{args}-x{shape}",
                                (lambda a: lambda engine, rng, dtype: nn.MeanPool2d(*a, autograd_engine=engine))(args),
                                shape, torch_nn("AvgPool2d", *args)))
    cases.append(ModuleCase("Flatten-x(2, 3, 4, 5)", lambda engine, rng, dtype: nn.Flatten(engine), (2, 3, 4, 5),
                            torch_nn("Flatten")))
    for cls, factor, shape in [(nn.Downsample1d, 2, (2, 3, 7)), (nn.Downsample2d, 3, (2, 2, 7, 8)),
                               (nn.Upsample1d, 3, (2, 3, 4)), (nn.Upsample2d, 2, (1, 2, 3, 4))]:
        twin = t_downsample if cls.__name__.startswith("Down") else t_upsample
        cases.append(ModuleCase(f"{cls.__name__}({factor})-x{shape}",
                                (lambda c, f: lambda engine, rng, dtype: c(f, engine))(cls, factor), shape,
                                (lambda t, f: lambda module: (lambda x: t(x, f)))(twin, factor)))
    return cases


MODULE_CASES = _build_module_cases()
