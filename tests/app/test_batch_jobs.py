"""`app.jobs.each`: a batch job's items, each on its own, failures raised at the end."""

import pytest

from app.jobs import RetryLater, each


def test_a_failing_item_does_not_stop_the_others_and_is_raised_at_the_end(app):
    done = []

    def work(item):
        if item == 2:
            raise ValueError("item 2 is broken")
        done.append(item)
        return item * 10

    with pytest.raises(ValueError, match="item 2"):
        each([1, 2, 3], work)
    assert done == [1, 3]
    assert each([1, 3], work) == [10, 30]


def test_a_provider_asking_to_wait_stops_the_batch_at_once(app):
    done = []

    def work(item):
        if item == 2:
            raise RetryLater("429", after=30)
        done.append(item)

    with pytest.raises(RetryLater):
        each([1, 2, 3], work)
    assert done == [1]
