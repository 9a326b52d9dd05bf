"""An in-memory network and virtual clock for SIP user agents (test helper)."""

from __future__ import annotations

from collections import deque

from fastfax.sip import ua as uamod
from fastfax.sip.message import Request, Response, parse


class Net:
    """Delivers each UA's Transmit actions to the UA at the destination, fires timers in
    deadline order on a virtual clock and records every other action as an event."""

    def __init__(self, *agents: uamod.UserAgent):
        self.agents = {(a.config.host, a.config.port): a for a in agents}
        self.now = 0.0
        self.timers: dict[tuple[int, tuple], float] = {}
        self.queue: deque = deque()
        self.events: list[tuple[uamod.UserAgent, object]] = []
        self.wire: list[tuple[tuple[str, int], tuple[str, int], Request | Response]] = []
        self.drop = lambda src, dst, message: False
        self.intercept: dict[tuple[str, int], object] = {}

    def run(self, agent: uamod.UserAgent, actions) -> None:
        src = (agent.config.host, agent.config.port)
        for action in actions:
            if isinstance(action, uamod.Transmit):
                self.queue.append((src, action.destination, action.data))
            elif isinstance(action, uamod.SetTimer):
                self.timers[(id(agent), action.key)] = action.deadline
            elif isinstance(action, uamod.ClearTimer):
                self.timers.pop((id(agent), action.key), None)
            else:
                self.events.append((agent, action))

    def _by_id(self, ident: int) -> uamod.UserAgent:
        return next(a for a in self.agents.values() if id(a) == ident)

    def step(self, until: float) -> bool:
        """Deliver one message, or fire the earliest timer due by ``until``."""
        if self.queue:
            src, dst, data = self.queue.popleft()
            message = parse(data)
            self.wire.append((src, dst, message))
            if self.drop(src, dst, message):
                return True
            handler = self.intercept.get(dst)
            if handler is not None:
                handler(self, src, data)
                return True
            agent = self.agents.get(dst)
            if agent is not None:
                self.run(agent, agent.handle(uamod.Datagram(data, src), self.now))
            return True
        if not self.timers:
            return False
        (ident, key), deadline = min(self.timers.items(), key=lambda kv: kv[1])
        if deadline > until:
            return False
        del self.timers[(ident, key)]
        self.now = max(self.now, deadline)
        agent = self._by_id(ident)
        self.run(agent, agent.handle(uamod.TimerExpired(key), self.now))
        return True

    def pump(self, until: float | None = None) -> None:
        """Run until nothing is due before ``until`` (default: the messages in flight only)."""
        limit = self.now if until is None else until
        for _ in range(100000):
            if not self.step(limit):
                break
        else:
            raise AssertionError("network did not settle")
        if until is not None:
            self.now = max(self.now, until)

    def of(self, agent: uamod.UserAgent, kind: type) -> list:
        return [e for a, e in self.events if a is agent and isinstance(e, kind)]

    def methods(self) -> list[str]:
        return [m.method if isinstance(m, Request) else f"{m.status} {m.cseq[1]}"
                for _, _, m in self.wire]
