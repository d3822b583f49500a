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


def test_rqs_timeout_stops_the_batch_at_once(app):
    """RQ's JobTimeoutException is an Exception: taken for one item's failure, the batch
    would go on past the job's limit."""
    from rq.timeouts import JobTimeoutException

    done = []

    def work(item):
        if item == 2:
            raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")
        done.append(item)

    with pytest.raises(JobTimeoutException):
        each([1, 2, 3], work)
    assert done == [1]


def test_rqs_timeout_stops_a_wave_of_emails_sent_in_the_jobs_own_thread(app, monkeypatch):
    """One thread: the emails go out in the job's own thread, where RQ raises its timeout;
    it is not one email's answer, and the emails after it are not sent past the limit."""
    from rq.timeouts import JobTimeoutException

    from app import mail
    from app.mail import delivery

    sent = []

    def out_of_time(email, key):
        sent.append(key)
        raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")

    monkeypatch.setattr(delivery, "transmit", out_of_time)
    emails = [(f"k{n}", mail.new_email(f"p{n}@example.com", "Hi", "<p>Hi</p>", "Hi"))
              for n in range(3)]
    with pytest.raises(JobTimeoutException):
        mail.transmit_all(emails, threads=1)
    assert sent == ["k0"]
