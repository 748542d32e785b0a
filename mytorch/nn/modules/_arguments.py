"""Argument checks shared by the CNN pack's modules (clear errors naming the module)."""
import numpy as np


def check_int(owner, name, value, minimum=1):
    """``value`` as an int, or a ValueError naming ``owner`` and ``name`` unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        hint = ""
        if hasattr(value, "add_operation"):
            hint = " (that is an autograd engine: pass it as autograd_engine=...)"
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}{hint}")
    return int(value)


def check_engine(owner, autograd_engine):
    """``autograd_engine``, or a TypeError naming ``owner`` when it is missing or not an engine."""
    if not hasattr(autograd_engine, "add_operation"):
        raise TypeError(
            f"{owner}: autograd_engine is required (an Autograd(), e.g. "
            f"{owner}(..., autograd_engine=engine)), got {type(autograd_engine).__name__}"
        )
    return autograd_engine


def check_batch(module, x, dims, channels=None):
    """Raise a ValueError naming ``module`` unless ``x`` is an array (N, C, *spatial) with ``dims`` spatial axes."""
    if isinstance(x, np.ndarray) and x.ndim == dims + 2 and (channels is None or x.shape[1] == channels):
        return
    layout = "(N, C, W)" if dims == 1 else "(N, C, H, W)"
    if channels is not None:
        layout = layout.replace("C", str(channels))
    raise ValueError(f"{module!r}.forward: expected an array of shape {layout}, got shape {np.shape(x)}")
