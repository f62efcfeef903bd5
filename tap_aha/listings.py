"""The run's account-wide listings, started at once: their pages fetched ahead of the streams that read them.

The SDK syncs one stream after another, so each listing's first request used to wait for every stream before
it: the audit log, the votes, the ideas, the organizations, the idea users, the portals, the workspaces and
each workspace's categories, a full round trip each, one after another. At sync start the tap asks every
selected stream which walks it will begin with (`walks_ahead`: URL and first page's parameters, known from
the state and the settings alone), and here they all start at once. A stream's walk then takes its pages by
key (stream name, URL, first page's parameters); a walk that asks with other parameters, or a second walk of
the same listing (one that shifted), requests its pages itself as before. A listing whose pages hold the
parents of others (workspaces: their categories) starts those as soon as each page arrives (`FanOut`).

Only the HTTP requests move: each goes through the stream's own request path (the shared rate limiter, its
retries), and a page is parsed, its records written and the state moved in the main thread, stream by stream,
in the same order as without read-ahead. A failure is kept with its page and raised where the walk takes that
page, so it surfaces in its own stream's sync, at the point it always did, and a refusal is decided there
(`AhaStream.skip_refused`: the stream, or a fan-out's one parent). A listing reads at most `pages_ahead` pages
beyond the one its walk takes (pages held, never a whole table), and the pool holds at most its window of
pages in all. When the run ends, however it ends,
`stop` forgets every page and the workers give up before their next retry. Only the tap's sync starts
listings (`TapAha.before_streams`); the Lakeflow connector never does, so its reads leave no worker behind.

The pages are fetched by a `tap_aha.prefetch.Prefetcher` of their own, the children's mechanism (its slots,
window, order and discard): a second pool, because the ideas stream discards its pool at the end of its sync
and fails every later fetch after a first failure, while a listing's failure concerns only its own stream.
"""

from __future__ import annotations

import functools
import threading
import typing as t
from dataclasses import dataclass, field

from tap_aha.prefetch import Prefetcher

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    import requests

Row = dict[str, t.Any]
ListingKey = tuple[str, str, tuple[tuple[str, str], ...]]


class Lister(t.Protocol):
    """What a listing's stream offers the workers; every method is safe to call from a worker thread."""

    @property
    def name(self) -> str:
        """The stream's name: part of the listing's key."""
        ...

    def listing_url(self, context: Mapping[str, t.Any] | None) -> str:
        """The listing's URL for a parent's context (the workspace of its categories)."""
        ...

    def fetch_page(self, url: str, params: Mapping[str, t.Any]) -> requests.Response:
        """One page through the limiter and retries, validated."""
        ...

    def page_items(self, response: requests.Response) -> list[Row]:
        """The page's records as Aha! sent them."""
        ...

    def has_more(self, response: requests.Response) -> bool:
        """Whether a page follows this one."""
        ...

    def child_contexts(self, item: Row) -> Iterable[Mapping[str, t.Any]]:
        """The contexts of a record's children (a workspace's categories)."""
        ...


def listing_key(name: str, url: str, params: Mapping[str, t.Any]) -> ListingKey:
    """Which walk a listing serves: the stream, the URL and the first page's parameters, as sent."""
    return name, url, tuple(sorted((key, str(value)) for key, value in params.items() if value is not None))


@dataclass(frozen=True)
class FanOut:
    """A child listing started for each record of its parent's pages (the categories of each workspace)."""

    child: Lister
    params: Mapping[str, t.Any]  # the first page's, the same for every parent
    pages_ahead: int
    fan_outs: tuple[FanOut, ...] = ()

    def walk(self, context: Mapping[str, t.Any]) -> Walk:
        """The child's walk for one parent."""
        return Walk(self.child, self.child.listing_url(context), self.params, self.pages_ahead, self.fan_outs)


@dataclass(frozen=True)
class Walk:
    """A walk a stream will make, known before it syncs: started at once, taken by its first page's key."""

    stream: Lister
    url: str
    params: Mapping[str, t.Any]  # the first page's; later pages differ only in `page`
    pages_ahead: int = 2  # pages fetched beyond the one the walk reads, at most (0: the walk fetches them)
    fan_outs: tuple[FanOut, ...] = ()
    paged: bool = True  # False: the first request only (the audit log's walk goes on with `after_id`)

    @property
    def key(self) -> ListingKey:
        """The stream, URL and first page's parameters."""
        return listing_key(self.stream.name, self.url, self.params)


@dataclass(frozen=True)
class _Page:
    """One page as fetched: its response and whether another follows, or the error to raise in its walk."""

    response: requests.Response | None
    more: bool = False
    error: BaseException | None = None


class Listings:
    """The listings of one run read ahead, by key; owned by the run's connection, used by the tap's sync."""

    def __init__(self, workers: int) -> None:
        """At most `workers` pages in flight (and twice that many held); one worker means no read-ahead."""
        self._pool: Prefetcher[_Page] = Prefetcher(workers)
        self._lock = threading.Lock()
        self._listings: dict[ListingKey, _Listing] = {}
        self._open = False

    def start(self, walks: Iterable[Walk]) -> None:
        """Start these walks' first pages at once, in the order given (the order the streams sync in)."""
        if not self._pool.enabled:
            return
        with self._lock:
            self._open = True
        for walk in walks:
            self.add(walk)

    def add(self, walk: Walk) -> None:
        """Start one more walk (a fan-out's); none once the run stopped, none twice."""
        with self._lock:
            if not self._open or walk.key in self._listings:
                return
            listing = self._listings[walk.key] = _Listing(walk, self, self._pool)
        listing.begin()

    def take(self, name: str, url: str, params: Mapping[str, t.Any]) -> Iterator[requests.Response] | None:
        """The pages of the walk started with this first request, once; None if none was (read as before).

        A page's error is raised where the walk takes that page.
        """
        with self._lock:
            listing = self._listings.pop(listing_key(name, url, params), None)
        return None if listing is None else listing.pages()

    def stop(self) -> None:
        """The run ended: forget every listing and page; workers give up before their next retry."""
        with self._lock:
            self._open = False
            self._listings.clear()
        self._pool.discard()


@dataclass
class _Listing:
    """One started walk: its pages planned in the pool, at most `pages_ahead` beyond the one it reads."""

    walk: Walk
    listings: Listings
    pool: Prefetcher[_Page]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _planned: int = 0  # pages planned so far: 1 to _planned
    _asked: int = 0  # the page the walk reads or waits for (0: not started)
    _waiting: int | None = None  # a page known to follow, held back by the bound
    _closed: bool = False

    def begin(self) -> None:
        """Plan the first page."""
        with self._lock:
            self._plan(1)

    def pages(self) -> Iterator[requests.Response]:
        """The responses in page order; pages fetched ahead are forgotten when the walk stops early."""
        number = 1
        try:
            while True:
                with self._lock:
                    self._asked = number
                    here = self._waiting == number and not self.walk.pages_ahead
                    if here:  # nothing ahead: the walk's own thread fetches its page, as without read-ahead
                        self._planned, self._waiting = number, None
                    elif self._waiting is not None and self._waiting - number <= self.walk.pages_ahead:
                        self._plan(self._waiting)
                        self._waiting = None
                page = self._fetch(number) if here else self.pool.take((self.walk.key, number))
                if page is None:  # not reachable: each page plans the next before the walk can take it
                    raise RuntimeError(f"page {number} of {self.walk.url} was never planned")
                if page.error is not None:
                    raise page.error
                if page.response is not None:
                    yield page.response
                if not page.more:
                    return
                number += 1
        finally:
            self._close(number)

    def _plan(self, number: int) -> None:
        """Plan page `number` (call with the lock held)."""
        self._planned = number
        self.pool.plan((self.walk.key, number), functools.partial(self._fetch, number))

    def _fetch(self, number: int) -> _Page:
        """In a worker: one page, its fan-outs started, the next page planned if the bound allows."""
        walk = self.walk
        try:
            params = walk.params if number == 1 else {**walk.params, "page": number}
            response = walk.stream.fetch_page(walk.url, params)
            items = walk.stream.page_items(response)
            more = walk.paged and bool(items) and walk.stream.has_more(response)
            for fan_out in walk.fan_outs:
                for item in items:
                    for context in walk.stream.child_contexts(item):
                        self.listings.add(fan_out.walk(context))
        except BaseException as exc:
            return _Page(None, error=exc)
        if more:
            with self._lock:
                if self._closed:
                    pass
                elif number + 1 - self._asked <= walk.pages_ahead:
                    self._plan(number + 1)
                else:
                    self._waiting = number + 1
        return _Page(response, more=more)

    def _close(self, asked: int) -> None:
        """The walk is done or stopped: plan nothing more, drop what was fetched beyond page `asked`."""
        with self._lock:
            self._closed = True
            self._waiting = None
            ahead = range(asked + 1, self._planned + 1)
        for number in ahead:
            self.pool.drop((self.walk.key, number))
