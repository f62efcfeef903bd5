"""Page-number listings shift when ideas change mid-walk: no idea that stayed may be skipped."""

from __future__ import annotations

import collections
import typing as t

import pytest

from tests.conftest import Config, run_tap
from tests.fake_aha import FakeAha
from tests.fake_http import RequestLog

PAGE = 10


def _on_listing_page(fake: FakeAha, page: int, action: t.Callable[[], object]) -> None:
    """Run `action` once, just before the listing page `page` is answered."""
    done = False

    def hook(request: RequestLog) -> None:
        nonlocal done
        if not done and request.path == "/api/v1/ideas" and request.query.get("page") == str(page):
            done = True
            action()

    fake.on_request.append(hook)


def _run(fake: FakeAha, config: dict[str, t.Any]) -> tuple[set[str], collections.Counter[str]]:
    run = run_tap({**config, "api_url": fake.url, "page_size": PAGE})
    counts = collections.Counter(r["id"] for r in run.records("ideas"))
    return set(counts), counts


@pytest.mark.parametrize("order", ["created_desc", "updated_desc", "updated_asc", "id"])
def test_deleting_an_already_read_idea_skips_no_other(config: Config, order: str) -> None:
    with FakeAha(order=order) as fake:
        fake.seed(45)
        first_page = fake.idea_ids()  # resolved lazily below, in listing order
        _on_listing_page(fake, 3, lambda: fake.delete_idea(_listed(fake, order)[0]))
        survivors_before = set(first_page)
        ids, counts = _run(fake, config)
        assert set(fake.idea_ids()) <= ids
        assert ids <= survivors_before
        assert max(counts.values()) == 1  # each idea emitted once per run


@pytest.mark.parametrize("order", ["created_desc", "updated_desc", "updated_asc", "id"])
def test_updating_an_already_read_idea_skips_no_other(config: Config, order: str) -> None:
    with FakeAha(order=order) as fake:
        fake.seed(45)
        _on_listing_page(fake, 2, lambda: fake.update_idea(_listed(fake, order)[0], name="moved"))
        ids, _ = _run(fake, config)
        assert ids == set(fake.idea_ids())


@pytest.mark.parametrize("order", ["created_desc", "updated_desc", "updated_asc", "id"])
def test_inserting_during_the_walk_skips_nothing(config: Config, order: str) -> None:
    with FakeAha(order=order) as fake:
        fake.seed(45)
        before = set(fake.idea_ids())
        _on_listing_page(fake, 2, lambda: [fake.add_idea() for _ in range(3)])
        ids, counts = _run(fake, config)
        assert before <= ids
        assert max(counts.values()) == 1


def test_a_listing_that_never_settles_is_read_a_bounded_number_of_times(config: Config) -> None:
    with FakeAha(order="created_desc") as fake:
        fake.seed(45)
        first = run_tap({**config, "api_url": fake.url})
        changed = fake.idea_ids()[:25]  # three pages of changes to walk
        for idea_id in changed:
            fake.update_idea(idea_id, name="changed")

        def churn(request: RequestLog) -> None:
            if request.path == "/api/v1/ideas" and request.query.get("page") == "2":
                fake.add_idea()

        fake.on_request.append(churn)
        second = run_tap({**config, "api_url": fake.url, "page_size": PAGE}, state=first.state)
        walks = [r for r in fake.requests if r.path == "/api/v1/ideas" and r.query.get("page") == "1"]
        assert len(walks) == 1 + 4  # the first run, then the capped number of walks
        assert set(changed) <= second.ids("ideas")
        bookmark = second.bookmark()
        assert bookmark is not None
        assert bookmark > str(first.bookmark())  # a busy account still moves on


def _listed(fake: FakeAha, order: str) -> list[str]:
    """Idea ids in the fake's listing order (what page 1 showed first)."""
    ideas = fake.ideas()
    keys: dict[str, t.Callable[[dict[str, t.Any]], t.Any]] = {
        "created_desc": lambda i: (i["created_at"], i["id"]),
        "updated_desc": lambda i: (i["updated_at"], i["id"]),
        "updated_asc": lambda i: (i["updated_at"], i["id"]),
        "id": lambda i: i["id"],
    }
    reverse = order in {"created_desc", "updated_desc"}
    return [i["id"] for i in sorted(ideas, key=keys[order], reverse=reverse)]
