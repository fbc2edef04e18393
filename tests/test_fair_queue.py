"""A fair device queue: users take turns on the device, so one user's many queued jobs do not make another
user wait for all of them; and one user may have at most --queue-per-user jobs waiting (one more is refused,
HTTP 429 naming the flag), whatever room the global --queue-limit still has."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from modules.models.fifo_lock import FairLock, QueueFull, UserQueueFull
from tests.inprocess_app import running_app
from tests.waiting import wait_for

A_JOBS = 20


def test_users_take_turns_on_the_device():
    """A holds the device and queues 3 more, B and C one each: after A's first, every user gets a turn."""
    lock, order = FairLock(), []
    assert lock.acquire(owner="A")
    threads = []
    for owner, key in (("A", "a1"), ("A", "a2"), ("A", "a3"), ("B", "b1"), ("C", "c1")):
        thread = threading.Thread(target=lambda o=owner, k=key: (lock.acquire(owner=o, key=k), order.append(k),
                                                                  lock.release()))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=len(threads): lock.waiting == n, what=f"{key} to queue")
    assert [lock.ahead_of(k) for k in ("b1", "c1", "a1", "a2", "a3")] == [1, 2, 3, 4, 5]
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == ["b1", "c1", "a1", "a2", "a3"]
    assert lock.waiting == 0 and lock.acquire(owner="D")  # free again


def test_with_two_places_users_still_take_turns():
    """The front end's line for --workers ray: two jobs at a time; A fills both and queues 4 more, then B one.
    B gets the next place that frees; more places (a worker added) are handed out at once."""
    lock, order = FairLock(places=2), []
    assert lock.acquire(owner="A") and lock.acquire(owner="A")
    threads = []
    for owner, key in (("A", "a1"), ("A", "a2"), ("A", "a3"), ("A", "a4"), ("B", "b1")):
        thread = threading.Thread(target=lambda o=owner, k=key: (lock.acquire(owner=o, key=k), order.append(k)))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=len(threads): lock.waiting == n, what=f"{key} to queue")
    assert lock.ahead_of("b1") == 2  # the two holding places
    lock.release()
    wait_for(lambda: order == ["b1"], what="B to get the first free place")
    lock.set_places(3)  # a worker came: its place goes to the next waiter at once
    wait_for(lambda: order == ["b1", "a1"], what="A's next job to get the new place")
    for n in range(3):
        lock.release()
        wait_for(lambda n=n: len(order) == 3 + n, what="the next place")
    for thread in threads:
        thread.join(10)
    assert order == ["b1", "a1", "a2", "a3", "a4"]
    lock.set_places(1)  # fewer places: the holders finish, then one at a time
    for _ in range(3):
        lock.release()
    assert lock.acquire(owner="C")
    waiting = threading.Thread(target=lambda: (lock.acquire(owner="D"), order.append("d1")))
    waiting.start()
    wait_for(lambda: lock.waiting == 1, what="D to queue behind C's one place")
    lock.release()
    waiting.join(10)
    assert order[-1] == "d1"

def test_one_user_may_have_queue_per_user_jobs_waiting():
    lock, done = FairLock(limit=10, per_owner=2), []
    assert lock.acquire(owner="holder")
    threads = [threading.Thread(target=lambda: done.append(lock.acquire(owner="A"))) for _ in range(2)]
    for n, thread in enumerate(threads, 1):
        thread.start()
        wait_for(lambda n=n: lock.waiting_for("A") == n, what="A's jobs to queue")
    with pytest.raises(UserQueueFull, match=r"^you already have 2 jobs waiting .*--queue-per-user") as refused:
        lock.refuse_if_full("A")
    assert isinstance(refused.value, QueueFull)  # a kind of busy: callers that catch QueueFull catch it too
    with pytest.raises(UserQueueFull):
        lock.acquire(owner="A")
    lock.refuse_if_full("B")  # another user still has room
    lock.refuse_if_full(None)  # and so has the server's own work (no owner): only --queue-limit bounds it
    for n in (1, 2):
        lock.release()
        wait_for(lambda n=n: len(done) == n, what=f"A's job {n} to get the device")
    lock.release()
    for thread in threads:
        thread.join(10)
    assert done == [True, True]


def test_a_user_with_twenty_queued_jobs_lets_another_user_start_after_at_most_one(backend, small_request):
    """Through Backend.txt2img, as the UI and the API run jobs: user A queues 20, then user B one."""
    lock = backend.manager.device_lock
    saved = lock.per_owner
    lock.per_owner = A_JOBS
    jobs, threads = [], []

    def submit(owner: str):
        job = backend.new_job("txt2img", owner)
        jobs.append(job)
        thread = threading.Thread(target=backend.txt2img, args=(small_request(steps=1, width=32, height=32,
                                                                              save_images=False), job))
        thread.start()
        threads.append(thread)
        return job

    try:
        assert lock.acquire(owner="someone else")  # the device is busy while the queue fills
        try:
            for n in range(1, A_JOBS + 1):
                submit("A")
                wait_for(lambda n=n: lock.waiting_for("A") == n, what=f"A's job {n} to queue")
            b_job = submit("B")
            wait_for(lambda: lock.waiting_for("B") == 1, what="B's job to queue")
            assert lock.ahead_of(b_job.id) == 2  # the job on the device, then A's first
        finally:
            lock.release()
            released = time.time()
        for thread in threads:
            thread.join(300)
    finally:
        lock.per_owner = saved
    assert all(job.state == "done" for job in jobs), [(j.state, j.error) for j in jobs]
    a_before_b = [j for j in jobs if j.owner == "A" and j.started_at < b_job.started_at]
    assert len(a_before_b) <= 1
    last_a = max(j.started_at for j in jobs if j.owner == "A")  # a figure for the record, not a check
    print(f"\nqueue wait once the device was free: user B {b_job.started_at - released:.2f} s "
          f"(after {len(a_before_b)} of A's jobs); A's last job {last_a - released:.2f} s")


@pytest.fixture(scope="module")
def app_with_users(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fair-queue")
    flags = ["--api", "--api-auth", "alice:alice-pw,bob:bob-pw", "--queue-per-user", "1",
             "--models-dir", str(models_dir), "--outdir", str(root / "outputs"), "--skip-load-model-at-start",
             "--offline"]
    with running_app(*flags, env={"ZOO_SETTINGS_FILE": str(root / "config.json")}) as live:
        yield live


def test_the_api_refuses_a_users_job_beyond_queue_per_user_with_429(app_with_users):
    app = app_with_users
    lock = app.backend.manager.device_lock
    tiny = {"prompt": "a red circle", "width": 32, "height": 32, "steps": 1,
            "override_settings": {"sd_model_checkpoint": "tiny-sd15"}, "save_images": False}
    answers: dict = {}

    def post(user: str, name: str):
        answers[name] = requests.post(app.url + "/sdapi/v1/txt2img", json=tiny, auth=(user, f"{user}-pw"), timeout=120)

    assert lock.acquire(owner="holder")
    try:
        first = threading.Thread(target=post, args=("alice", "alice-1"))
        first.start()
        wait_for(lambda: lock.waiting_for("user:alice") == 1, what="alice's first job to queue")
        post("alice", "alice-2")
        refused = answers["alice-2"]
        assert refused.status_code == 429, refused.text
        assert "--queue-per-user" in refused.json()["detail"] and refused.headers["Retry-After"]
        other = threading.Thread(target=post, args=("bob", "bob-1"))
        other.start()
        wait_for(lambda: lock.waiting_for("user:bob") == 1, what="bob's job to queue: his share is his own")
    finally:
        lock.release()
    first.join(120)
    other.join(120)
    assert answers["alice-1"].status_code == 200 and answers["bob-1"].status_code == 200


def test_queue_per_user_defaults_to_4_and_refuses_a_negative_number(capsys):
    from modules import cmd_args

    assert cmd_args.parse_args([]).queue_per_user == 4
    assert cmd_args.parse_args(["--queue-per-user", "20"]).queue_per_user == 20
    with pytest.raises(SystemExit):
        cmd_args.parse_args(["--queue-per-user", "-1"])
    assert "--queue-per-user must be 0 or more" in capsys.readouterr().err


def test_anonymous_browsers_wait_in_line_by_address_and_logged_in_users_by_name():
    """Without logins a user is their address: a second browser session (a new cookie) from one address
    shares that address's --queue-per-user share and its turns; logged-in users are apart by name."""
    from types import SimpleNamespace

    from modules import owners
    from modules.security.ui_session import COOKIE, new_cookie_value
    from modules.ui.common import owner_of, queue_user_of

    def browser(address: str, username: str | None = None):
        raw = SimpleNamespace(cookies={COOKIE: new_cookie_value()})
        return SimpleNamespace(username=username, request=raw, client=SimpleNamespace(host=address))

    first, second, elsewhere = browser("10.0.0.5"), browser("10.0.0.5"), browser("10.0.0.6")
    assert owner_of(first) != owner_of(second)  # two sessions: their jobs stay apart ...
    assert queue_user_of(first) == queue_user_of(second) == "address:10.0.0.5"  # ... but wait as one user
    assert queue_user_of(elsewhere) != queue_user_of(first)
    alice, bob = browser("127.0.0.1", "alice"), browser("127.0.0.1", "bob")
    assert queue_user_of(alice) == owners.user("alice") != queue_user_of(bob)
    # an anonymous API caller at an address is the same user as the browsers there
    assert owners.queue_user(owners.api_anonymous("10.0.0.5")) == queue_user_of(first)
