"""zero_grad keeps the tape and buffer flat over many training steps (counted, never timed)."""
import weakref

import numpy as np

from mytorch import Autograd, nn
from mytorch.optim import SGD

STEPS = 10_000


def test_tape_and_buffer_stay_bounded_over_10000_steps():
    """A small MLP trained 10,000 steps: tape and buffer sizes never grow, old arrays are freed,
    and nothing stays read-only between steps."""
    rng = np.random.default_rng(0)
    engine = Autograd()
    l1, l2 = nn.Linear(4, 8, engine, rng=rng), nn.Linear(8, 3, engine, rng=rng)
    model = [l1, nn.ReLU(engine), l2]
    loss = nn.SoftmaxCrossEntropy(engine)
    opt = SGD(l1.parameters() + l2.parameters(), lr=0.05, momentum=0.9)
    data = rng.standard_normal((64, 4))
    labels = np.eye(3)[(data[:, 0] > 0).astype(int) + (data[:, 1] > 1).astype(int)]
    persistent = [data, labels, l1.W, l1.b, l1.dW, l1.db, l2.W, l2.b, l2.dW, l2.db]

    tape_sizes, buffer_sizes, first_losses, last_losses = set(), set(), [], []
    watched = []
    for step in range(STEPS):
        engine.zero_grad()
        assert len(engine.operation_list) == 0 and len(engine.gradient_buffer.memory) == 0
        opt.zero_grad()
        start = (step * 8) % 64
        x, y = data[start:start + 8], labels[start:start + 8]
        h = x
        for layer in model:
            h = layer(h)
        value = float(loss(y, h)[0])
        loss.backward()
        opt.step()
        if watched:  # arrays recorded on the previous step are gone (modules replaced their state)
            alive = [ref().shape for ref in watched if ref() is not None]
            assert alive == [], "arrays of step %d are still alive: %s" % (step - 1, alive)
            watched = []
        tape_sizes.add(len(engine.operation_list))
        buffer_sizes.add(len(engine.gradient_buffer.memory))
        if step % 1000 == 999:
            ids = {id(p) for p in persistent}
            watched = [weakref.ref(a) for op in engine.operation_list
                       for a in (*op.inputs, op.output) if id(a) not in ids]
            locked = [a.shape for a in persistent + [x, y, h, loss.loss_val] if not a.flags.writeable]
            assert locked == [], "read-only after backward at step %d: %s" % (step, locked)
            del x, y, h
        (first_losses if step < 100 else last_losses if step >= STEPS - 100 else []).append(value)
    # 6 operations (2 per Linear, ReLU, loss); 7 buffer spots: x, both pre-bias products,
    # the first layer's output, the ReLU output, the logits and the labels
    assert tape_sizes == {6} and buffer_sizes == {7}, (tape_sizes, buffer_sizes)
    assert all(a.flags.writeable for a in persistent)
    assert np.mean(last_losses) < np.mean(first_losses) / 2  # it did train
