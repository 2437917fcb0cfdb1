"""Learning-rate schedules at their turning points."""

import numpy as np
import pytest

from ddag.engine.schedules import WarmupStep


def test_paper_schedule_turning_points():
    schedule = WarmupStep(warmup_epochs=10, milestones=(20, 50), gamma=0.1)
    assert schedule.factor(0) == pytest.approx(0.1)
    assert schedule.factor(4) == pytest.approx(0.5)
    assert schedule.factor(9) == pytest.approx(1.0)
    assert schedule.factor(19) == pytest.approx(1.0)
    assert schedule.factor(20) == pytest.approx(0.1)
    assert schedule.factor(49) == pytest.approx(0.1)
    assert schedule.factor(50) == pytest.approx(0.01)
    assert schedule.factor(79) == pytest.approx(0.01)


def test_per_step_array_is_constant_within_an_epoch():
    lr = WarmupStep(2, (3,), 0.1).per_step(0.1, epochs=4, steps_per_epoch=3)
    np.testing.assert_allclose(lr, [0.05] * 3 + [0.1] * 3 + [0.1] * 3 + [0.01] * 3, rtol=1e-6)
    assert lr.dtype == np.float32
