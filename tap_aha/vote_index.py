"""Proxy votes from the account-wide vote listing, held by idea until each idea is written.

One `/ideas/{id}/endorsements?proxy=true` per changed idea with votes would cost a request for most of them
only to find portal votes (`endorsements_count` counts those too). `GET /ideas/endorsements` lists the
account's votes 200 at a time with their `idea_id`: read once before the ideas, its proxy votes are grouped
here and handed to their idea's child sync. Only proxy votes of the window are held, each as its compact
JSON deflated against the first vote kept (votes share most keys and many values: about 0.2 kB a vote
instead of 0.7), and an idea's are dropped once taken.
"""

from __future__ import annotations

import typing as t
import zlib

import msgspec

from tap_aha.errors import AhaAPIError
from tap_aha.timestamps import normalize_timestamp

Row = dict[str, t.Any]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[Row]).decode


class ProxyVoteIndex:
    """The proxy votes updated since `since` (all when None), by idea id."""

    def __init__(self, since: str | None) -> None:
        """Empty; `since` in Aha!'s timestamp form."""
        self.since = since
        self._by_idea: dict[str, list[bytes]] = {}
        self._zdict = b""  # the first vote kept: the dictionary every vote is deflated against
        self.held_bytes = 0  # what the votes added take, for the run's log

    def add(self, votes: t.Iterable[Row]) -> None:
        """Keep the proxy votes of the window.

        Whatever the server's `proxy` filter did, a vote without an `idea_organization` is a portal vote; one
        updated before `since` came from a wider listing (the one `idea_votes` reads).
        """
        for vote in votes:
            if not vote.get("idea_organization"):
                continue
            if self.since is not None and changed_at(vote) < self.since:
                continue
            idea_id = vote.get("idea_id")
            if idea_id is None or idea_id == "":
                raise AhaAPIError(
                    f"Aha! listed vote {vote['id']} without an idea_id (GET /ideas/endorsements); "
                    "stopping without advancing the bookmark."
                )
            compact = _encode(vote)
            self._zdict = self._zdict or compact
            packer = zlib.compressobj(zdict=self._zdict)
            held = packer.compress(compact) + packer.flush()
            self._by_idea.setdefault(str(idea_id), []).append(held)
            self.held_bytes += len(held)

    def take(self, idea_id: str) -> list[Row]:
        """The idea's votes, forgotten here: each is written once."""
        return self._rows(self._by_idea.pop(idea_id, []))

    def get(self, idea_id: str) -> list[Row]:
        """The idea's votes, kept: a replayed batch reads them again."""
        return self._rows(self._by_idea.get(idea_id, []))

    def idea_ids(self) -> list[str]:
        """Ideas whose votes were not taken yet."""
        return list(self._by_idea)

    def _rows(self, held: list[bytes]) -> list[Row]:
        return _decode(b"[" + b",".join(map(self._inflate, held)) + b"]") if held else []

    def _inflate(self, held: bytes) -> bytes:
        unpacker = zlib.decompressobj(zdict=self._zdict)
        return unpacker.decompress(held) + unpacker.flush()


class RunVotes:
    """The run's one account-wide vote listing, which `idea_votes` and `idea_proxy_votes` both ask for.

    Neither stream reaches for the other: the tap says before the streams sync whether the proxy votes of the
    ideas' window are wanted (`want`); `idea_votes`, reading the listing anyway, offers them (`offer`);
    `idea_proxy_votes` takes them when they cover its window (`index_for`), else lists them itself. So the
    order the streams sync in changes how many listings a run reads, never what it emits.

    The plan also tells the run's read-ahead (tap_aha.listings) which vote listing to start before the streams
    sync, and from when: `idea_votes`' from `window` of its own, or, without `idea_votes`, the proxy votes'
    own (`listed_alone`) from `since`.
    """

    def __init__(self) -> None:
        """Nothing wanted, nothing listed."""
        self.wanted = False
        self.since: str | None = None  # the ideas' window, when wanted
        self.by_idea_votes = False  # `idea_votes` lists them (it syncs, and offers them, first)
        self.refused = False  # Aha! refused the listing this run: it is not asked for again
        self._index: ProxyVoteIndex | None = None

    def want(self, since: str | None, *, by_idea_votes: bool) -> None:
        """The proxy votes updated since `since` (the ideas' window) will be asked for.

        `by_idea_votes`: `idea_votes` is selected too, so its listing offers them.
        """
        self.wanted = True
        self.since = since
        self.by_idea_votes = by_idea_votes

    def window(self, own: str | None) -> str | None:
        """Where `idea_votes`' listing starts from its own window `own`: widened to the ideas' when wanted."""
        if not self.wanted:
            return own
        return None if own is None or self.since is None else min(own, self.since)

    def listed_alone(self) -> bool:
        """Whether the proxy votes will be listed on their own (`idea_votes` does not list them this run)."""
        return self.wanted and not self.by_idea_votes

    def offer(self, index: ProxyVoteIndex) -> None:
        """The proxy votes a listing of the wanted window found."""
        self._index = index

    def index_for(self, since: str | None) -> ProxyVoteIndex | None:
        """The offered proxy votes, if they are those of this window."""
        index = self._index
        return index if index is not None and index.since == since else None


def changed_at(vote: Row) -> str:
    """A vote's `updated_at` (else `created_at`) in Aha!'s form; one without either counts as changed now."""
    value = vote.get("updated_at") or vote.get("created_at")
    return normalize_timestamp(value) if isinstance(value, str) else "9999-12-31T23:59:59.999Z"
